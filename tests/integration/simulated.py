"""A simulated stream for integration tests: `shipguard simulate` into the test's directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from simulator.cli import add_arguments
from simulator.cli import run as simulate


def simulated_stream(directory: Path, *flags: str) -> tuple[Path, Path]:
    """(events.jsonl, labels.json) written into `directory` by the simulator with `flags`."""
    events, labels = directory / "events.jsonl", directory / "labels.json"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert simulate(parser.parse_args([*flags, "--out", str(events), "--labels", str(labels)])) == 0
    return events, labels
