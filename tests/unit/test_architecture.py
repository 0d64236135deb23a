"""The layout is the architecture: imports point down the layers, never round in a cycle.

Ranks, lowest first (``callstream/__init__.py`` draws them): the shared vocabulary, the audio
core, the ports, the domain (control and analytics, which never import each other), the
adapters, then the composition roots and the HTTP edge. A module may import its own rank or
below; only adapters (and the composition root that builds them) import boto3, botocore or
urllib3; the audio core reads no environment.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "shared" / "callstream"
SERVER = ROOT / "services" / "stream_server"
LOCAL = ROOT / "local"

RANKS = {
    "callstream.exceptions": 0,
    "callstream.vocabulary": 0,
    "callstream.clock": 0,
    "callstream.settings": 0,
    "callstream.logsafety": 0,
    "callstream.registry": 0,
    "callstream.audio": 1,
    "callstream.ports": 2,
    "callstream.control": 3,
    "callstream.analytics": 3,
    "callstream.console": 3,
    "callstream.adapters": 4,
    "callstream.http": 5,
    "callstream.edge": 5,
    "callstream.wiring": 5,
}
IO_LIBRARIES = ("boto3", "botocore", "urllib3")


def _name(path: Path, root: Path, package: str) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join((package, *parts)).removesuffix(".__init__")


def _modules(root: Path, package: str) -> dict[str, Path]:
    return {_name(p, root, package): p for p in sorted(root.rglob("*.py"))}


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from x import y`` counts x.y if a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parent = module.rsplit(".", node.level)[0]
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


MODULES = (
    _modules(PACKAGE, "callstream") | _modules(SERVER, "stream_server") | _modules(LOCAL, "local")
)
#: Who imports whom. Packages' ``__init__`` are left out as targets: ``from pkg import mod``
#: names the module, and an ``__init__`` here holds only a docstring.
GRAPH = {
    name: {
        i
        for i in _imports(path, name)
        if i in MODULES and i != name and MODULES[i].name != "__init__.py"
    }
    for name, path in MODULES.items()
}


def _rank(module: str) -> int:
    for prefix, rank in sorted(RANKS.items(), key=lambda kv: -len(kv[0])):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    if module.startswith("local"):
        return 10  # the embedded stack stands on everything; nothing stands on it
    return 9 if module.startswith("stream_server") else 6


def _layer(module: str) -> str:
    return ".".join(module.split(".")[:2])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in ``graph`` (its modules, the first repeated at the end), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            if (cycle := visit(imported, [*path, module])) is not None:
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        if (cycle := visit(module, [])) is not None:
            return cycle
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import in ``graph`` that points up the layers."""
    return [
        f"{module} → {imported}"
        for module, imports in graph.items()
        for imported in imports
        if _rank(imported) > _rank(module)
        and not imported.startswith(_layer(module) + ".")  # within a package is not upward
        and not (module.startswith("callstream.") and module.endswith("__init__"))
    ]


def test_the_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_imports_point_down_the_layers() -> None:
    assert upward_imports(GRAPH) == []


def test_control_and_analytics_do_not_import_each_other() -> None:
    crossing = [
        f"{module} → {imported}"
        for module, imports in GRAPH.items()
        for imported in imports
        if {_layer(module), _layer(imported)} == {"callstream.control", "callstream.analytics"}
    ]
    assert crossing == []


def test_only_adapters_and_wiring_import_io_libraries() -> None:
    offenders = [
        f"{module} imports {library}"
        for module, path in MODULES.items()
        if module.startswith("callstream.")
        and not module.startswith(("callstream.adapters", "callstream.wiring"))
        for library in sorted(_imports(path, module))
        if library.split(".")[0] in IO_LIBRARIES
    ]
    assert offenders == []


def test_the_audio_core_reads_no_environment() -> None:
    readers = [
        module
        for module, path in MODULES.items()
        if module.startswith("callstream.audio")
        and any(s in path.read_text() for s in ("settings.load(", "os.environ", "getenv("))
    ]
    assert readers == []


def test_the_audio_core_imports_only_the_vocabulary_and_the_exceptions() -> None:
    """Limits are handed in (``AudioLimits``), never read from the settings machinery."""
    allowed = ("callstream.audio", "callstream.vocabulary", "callstream.exceptions")
    beyond = [
        f"{module} → {imported}"
        for module, imports in GRAPH.items()
        if module.startswith("callstream.audio")
        for imported in imports
        if not imported.startswith(allowed)
    ]
    assert beyond == []
    assert "callstream.vocabulary" in GRAPH["callstream.audio.assembler"]  # it sees imports


def _planted(tmp_path: Path, module: str, source: str) -> dict[str, set[str]]:
    """GRAPH with ``module`` (parsed from ``source``, as the real files are) added or replaced."""
    path = tmp_path / "planted.py"
    path.write_text(source)
    graph = {name: set(imports) for name, imports in GRAPH.items()}
    graph[module] = {
        i
        for i in _imports(path, module)
        if i in MODULES and i != module and MODULES[i].name != "__init__.py"
    }
    return graph


def test_the_checker_catches_a_planted_upward_import(tmp_path: Path) -> None:
    """The layer rule is not vacuously green: a domain module importing an adapter fails it."""
    graph = _planted(
        tmp_path,
        "callstream.control.planted",
        "from callstream.adapters import dynamodb\nfrom callstream import vocabulary\n",
    )
    assert upward_imports(graph) == ["callstream.control.planted → callstream.adapters.dynamodb"]


def test_the_checker_catches_a_planted_cycle(tmp_path: Path) -> None:
    """The codecs importing the assembler (which imports the codecs) is a cycle it reports."""
    assert "callstream.audio.codecs" in GRAPH["callstream.audio.assembler"]
    graph = _planted(
        tmp_path,
        "callstream.audio.codecs",
        MODULES["callstream.audio.codecs"].read_text()
        + "\nfrom callstream.audio.assembler import Assembler\n",
    )
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert {"callstream.audio.codecs", "callstream.audio.assembler"} <= set(cycle)


def test_the_checker_sees_the_whole_house() -> None:
    assert all(module in GRAPH for module in ("callstream.wiring", "stream_server.wiring"))
    assert "local.stack" in GRAPH and _rank("stream_server.server") < _rank("local.stack")


def test_powertools_stays_at_the_edge() -> None:
    """The domain takes plain values: Powertools is the Lambdas' edge and the adapters' tool."""
    edge = ("callstream.edge", "callstream.http", "callstream.adapters", "callstream.wiring")
    offenders = [
        f"{module} imports {library}"
        for module, path in MODULES.items()
        if module.startswith("callstream.") and not module.startswith(edge)
        for library in sorted(_imports(path, module))
        if library.startswith("aws_lambda_powertools")
    ]
    assert offenders == []


def test_caches_live_in_the_composition_roots() -> None:
    """What a process keeps (clients, secrets, services) is built and forgotten in one place.

    ``audio.codecs`` may memoise its lookup tables: constants computed once, no environment.
    """
    allowed = ("callstream.wiring", "stream_server.wiring", "callstream.audio.codecs")
    keepers = [
        f"{module} imports {name}"
        for module, path in MODULES.items()
        if not module.startswith(("local.", *allowed))
        for name in sorted(_imports(path, module))
        if name in ("functools.cache", "functools.lru_cache")
    ]
    assert keepers == []
