"""The rooms import downwards only (schemas <- processors <- simulator <- streams), and the core does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAY_IMPORT = {
    "schemas": {"schemas"},
    "processors": {"schemas", "processors"},
    "simulator": {"schemas", "processors", "simulator"},
}
# No Faust, Kafka or asyncio in the functional core (STYLE.md 1).
CORE_FORBIDS = {"faust", "mode", "aiokafka", "kafka", "asyncio"}
# Old names kept importable for callers that other engineers are still moving; each goes with its caller.
KEPT_FOR_NOW = {
    ("processors/config.py", "streams.rules_file"),        # load_rules: streams/runtime/runner.py, tests, bench
    ("simulator/check.py", "streams.inprocess.engine"),    # check() without an engine: test_simulate_check.py
    ("simulator/check.py", "streams.rules_file"),
}
IO_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "now", "utcnow", "today"}


def modules(room: str) -> list[Path]:
    return sorted((ROOT / room).rglob("*.py"))


def imports(path: Path) -> list[str]:
    """Every module the file imports, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
    return found


@pytest.mark.parametrize("room", sorted(MAY_IMPORT))
def test_a_room_imports_only_itself_and_the_rooms_below_it(room):
    ours = {"schemas", "processors", "simulator", "streams", "bench", "tests"}
    upwards = [(str(path.relative_to(ROOT)), name) for path in modules(room) for name in imports(path)
               if name.split(".")[0] in ours - MAY_IMPORT[room]]
    assert [found for found in upwards if found not in KEPT_FOR_NOW] == []


@pytest.mark.parametrize("room", sorted(MAY_IMPORT))
def test_a_package_init_imports_nothing_of_its_own_package(room):
    """Its modules import each other through it (`from simulator import geo`): an import back is a cycle."""
    assert [name for name in imports(ROOT / room / "__init__.py") if name.split(".")[0] == room] == []


def test_the_core_imports_no_broker_stream_or_event_loop_library():
    assert [(path.name, name) for path in modules("processors") for name in imports(path)
            if name.split(".")[0] in CORE_FORBIDS] == []


def test_the_core_reads_no_file_and_no_clock():
    calls = []
    for path in modules("processors"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in IO_CALLS:
                    calls.append((path.name, node.lineno, name))
    assert calls == []
