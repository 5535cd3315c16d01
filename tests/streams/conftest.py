import json
from pathlib import Path

import pytest

from processors.config import load_rules
from streams.inprocess import InProcessEngine

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


@pytest.fixture
def engine():
    return InProcessEngine(load_rules())


def expected(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.expected.json").read_text(encoding="utf-8"))
