"""A deterministic, realistic generator of shipguard input events, with labels.

`generate(SimulationConfig(...))` builds the stream; `simulator.output` renders EVENTS.jsonl (a
valid event-mode replay) and LABELS.json (what the contract requires for every order);
`simulator.labels` is the independent reading of the contract that produces the labels;
`simulator.cli` is `shipguard simulate` (also `python -m simulator`).
"""

from simulator.generator import Simulation, SimulationConfig, SimulationError, generate, spread_faults

__all__ = ["Simulation", "SimulationConfig", "SimulationError", "generate", "spread_faults"]
