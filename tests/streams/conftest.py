import asyncio
import json
from pathlib import Path

import pytest

from streams.inprocess.engine import InProcessEngine
from streams.rules_file import load_rules

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
SCENARIOS = sorted(EXAMPLES.glob("*.jsonl"))


def run_files(engine: InProcessEngine, paths=SCENARIOS) -> InProcessEngine:
    """Publish every line of each replay file in `paths` through `engine`, in order; the engine."""
    async def go():
        for path in paths:
            await engine.run_file(path)
    asyncio.run(go())
    return engine


@pytest.fixture
def engine():
    return InProcessEngine(load_rules())


def expected(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.expected.json").read_text(encoding="utf-8"))
