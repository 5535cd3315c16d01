"""Fixtures for tests against a real broker on loopback: each test gets its own, stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka.embedded import EmbeddedBroker

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """A started embedded broker on a free port; stopped (and its process gone) after the test."""
    with EmbeddedBroker() as started:
        yield started


@pytest.fixture
def python_env() -> dict[str, str]:
    """Environment for a Python subprocess that imports this repository's packages."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
