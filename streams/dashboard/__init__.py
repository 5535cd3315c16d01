"""`shipguard dashboard`: a live web page over the output topics, for merchants' ops people.

Three layers, each usable without the next:

- `state`: `DashboardState`, the functional core (no Kafka, no asyncio, no wall clock of its
  own), with `window_counts.WindowCounts` for its sliding counts;
- `reader`: `OutputReader`, a plain aiokafka consumer that folds the output topics into the state;
- `server`: the aiohttp server (the page, its assets, server-sent events, the JSON snapshot).

`command` is the `shipguard dashboard` subcommand that wires the three together.
"""
