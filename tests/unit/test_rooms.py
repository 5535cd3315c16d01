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
    assert upwards == []


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


# Inside streams/ the rooms stack the same way: the worker's shell knows no broker client, and the
# plumbing and the Faust runtime sit above it (STYLE.md 2; docs/design.md).
STREAMS_FORBIDS = {
    "streams/worker": {"faust", "mode", "aiokafka", "kafka", "streams.kafka", "streams.runtime", "streams.cli",
                       "streams.dashboard", "streams.inprocess"},
    "streams/kafka": {"streams.runtime", "streams.cli", "streams.dashboard", "streams.inprocess", "streams.worker"},
}


@pytest.mark.parametrize("room", sorted(STREAMS_FORBIDS))
def test_the_shell_knows_no_broker_client_and_the_plumbing_knows_no_shell(room):
    forbidden = STREAMS_FORBIDS[room]
    found = [(path.name, name) for path in modules(room) for name in imports(path)
             if any(name == f or name.startswith(f + ".") for f in forbidden)]
    assert found == []


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports when it runs (at the top or in a function: both are a
    dependency; an import under `if TYPE_CHECKING:` never runs)."""
    paths = [p for room in ("schemas", "processors", "simulator", "streams") for p in modules(room)]
    known = {module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        targets = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            targets |= {name for name in names if name in known}
        graph[module_name(path)] = targets - {module_name(path)}
    return graph


def test_no_module_of_the_project_imports_itself_back_through_others():
    graph = project_imports()
    assert len(graph) > 60 and graph["streams.worker.shell"], "the import graph was read"
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []
