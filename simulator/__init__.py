"""A deterministic, realistic generator of shipguard input events, with labels.

`simulator.generator.generate(SimulationConfig(...))` builds the stream; `simulator.output`
renders EVENTS.jsonl (a valid event-mode replay) and LABELS.json (what the contract requires for
every order); `simulator.labels` is the independent reading of the contract that produces the
labels; `simulator.cli` is `shipguard simulate` (also `python -m simulator`), and
`simulator.check` compares a worker's outputs with the labels.

This package imports nothing of its own here, so that its modules can import each other
(`from simulator import geo`) without a cycle through this file.
"""
