"""The shape of ``ocr/`` (README "Architecture"), checked from the sources alone (no Ray, no torch,
a few seconds):

- the import contracts of pyproject.toml hold (``lint-imports``, which ``make test`` also runs);
- no import cycle among ocr's modules. grimp reads every import statement, those inside
  functions too, so a "lazy" import that only hides a cycle from Python still counts. ``from
  ocr.data.synth import augment`` is an import of the submodule ``ocr.data.synth.augment``, not
  of the package, so a submodule importing its siblings through the package path is no cycle;
  a submodule importing a *name* of its package's ``__init__``, which imports it back, is one;
- grimp sees every module: a folder without ``__init__.py`` is invisible to grimp and to
  ``lint-imports``, so neither would check it;
- no module over 400 lines.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10: import-linter brings tomli
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "ocr"
MAX_LINES = 400
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"   # the venv running the tests


# --- cycles --------------------------------------------------------------------------------
def strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative: no recursion limit), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges.get(nxt, ()))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def _shortest_cycle(start: str, members: set[str], edges: dict[str, list[str]]) -> list[str]:
    """The shortest chain start -> ... -> start inside one component (breadth first)."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in edges[node]:
                if nxt not in members:
                    continue
                if nxt == start:
                    chain = [node]
                    while chain[-1] != start:
                        chain.append(parent[chain[-1]])
                    return [start, *reversed(chain[:-1]), start]
                if nxt not in parent:
                    parent[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is on no cycle")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One chain ``[a, b, ..., a]`` per import cycle: per strongly connected component of the
    direct-import graph with more than one module (or a module importing itself), the shortest
    cycle through the component's first module."""
    nodes = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in nodes}
    cycles = []
    for component in strongly_connected(nodes, edges):
        if len(component) > 1 or component[0] in edges[component[0]]:
            cycles.append(_shortest_cycle(component[0], set(component), edges))
    return cycles


def describe_chain(graph: grimp.ImportGraph, chain: list[str]) -> str:
    """``a -> b -> a`` and, for each step, the line that imports (``a:12 from b import x``)."""
    lines = ["  " + " -> ".join(chain)]
    for importer, imported in zip(chain, chain[1:]):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = "; ".join(f"{importer}:{d['line_number']} {d['line_contents']}" for d in details[:3])
        lines.append(f"      {where or f'{importer} -> {imported}'}")
    return "\n".join(lines)


def build_graph(package: str) -> grimp.ImportGraph:
    return grimp.build_graph(package, cache_dir=None)   # no .grimp_cache folder in the checkout


@pytest.fixture(scope="module")
def ocr_graph() -> grimp.ImportGraph:
    spec = importlib.util.find_spec(PACKAGE)
    assert spec and spec.origin and Path(spec.origin).resolve() == REPO / PACKAGE / "__init__.py", \
        f"`{PACKAGE}` is imported from {spec and spec.origin}, not this checkout (pip install -e .)"
    return build_graph(PACKAGE)


def test_no_import_cycle(ocr_graph):
    cycles = import_cycles(ocr_graph)
    assert not cycles, (f"{len(cycles)} import cycle(s) among {PACKAGE}'s modules (imports inside "
                        "functions count):\n" + "\n".join(describe_chain(ocr_graph, c) for c in cycles))


def test_import_graph_sees_every_module(ocr_graph):
    """A folder without __init__.py is a namespace package: grimp (and so lint-imports) skips it,
    and nothing in it would be checked."""
    on_disk = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
               for p in (REPO / PACKAGE).rglob("*.py")}
    unseen = sorted(on_disk - set(ocr_graph.modules))
    folders = sorted({str(Path(*m.split(".")[:-1])) for m in unseen
                      if not (REPO / Path(*m.split(".")[:-1]) / "__init__.py").is_file()})
    assert not unseen, (f"grimp does not see {len(unseen)} module(s), so no check covers them: "
                        f"{unseen}\nfolders without __init__.py: {folders}")


# --- size ----------------------------------------------------------------------------------
def test_no_module_over_400_lines():
    counts = {str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
              for p in sorted((REPO / PACKAGE).rglob("*.py"))}
    over = sorted(((n, path) for path, n in counts.items() if n > MAX_LINES), reverse=True)
    assert not over, (f"{len(over)} module(s) over {MAX_LINES} lines: split them\n"
                      + "\n".join(f"  {n:5d}  {path}" for n, path in over))


# --- the contracts of pyproject.toml -------------------------------------------------------
def _lint_imports(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", *args, str(REPO / "pyproject.toml")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def _contracts() -> list[dict]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]["contracts"]


def _each_contract_alone() -> list[str]:
    lines = []
    for contract in _contracts():
        run = _lint_imports("--contract", contract["id"])
        text = (run.stdout + run.stderr).strip()
        verdict = re.search(r"\b(KEPT|BROKEN)\s*$", text.split("Broken contracts")[0], re.M)
        lines.append(f"  {contract['name']}: "
                     f"{verdict.group(1) if verdict else (text.splitlines() or [''])[-1]}")
        if "Broken contracts" in text:
            lines.append("    " + text.split("Broken contracts", 1)[1].strip("-\n ").replace("\n", "\n    "))
    return lines


def test_import_contracts_hold():
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} missing: pip install -e '.[dev]' (import-linter)"
    run = _lint_imports()
    output = run.stdout + run.stderr
    if run.returncode and "Broken contracts" not in output:
        # an error before any contract was checked (a module a contract names is missing) stops
        # lint-imports at the first contract: check each alone to show them all
        output += "\neach contract alone:\n" + "\n".join(_each_contract_alone())
    assert run.returncode == 0, f"lint-imports exited {run.returncode}:\n{output}"


def test_cli_contract_lists_every_top_level_module(ocr_graph):
    """'nothing imports cli' names its sources one by one: a new top-level module joins the list."""
    contract = next(c for c in _contracts() if c["forbidden_modules"] == [f"{PACKAGE}.cli"])
    top = {m for m in ocr_graph.modules if m.count(".") == 1} - {f"{PACKAGE}.cli"}
    missing = sorted(top - set(contract["source_modules"]))
    assert not missing, f"add {missing} to the source_modules of {contract['name']!r} in pyproject.toml"


# --- the cycle finder finds cycles ---------------------------------------------------------
def test_import_cycles_finds_a_cycle_through_a_function_level_import(tmp_path, monkeypatch):
    """A tiny package: a imports b at the top, b imports a inside a function (a cycle); synth/line
    imports its sibling augment through the package path (no cycle); real/mod imports a name of
    real/__init__, which imports mod back (a cycle)."""
    pkg = "archcheck_tiny_pkg"
    files = {
        "__init__.py": "",
        "a.py": f"import {pkg}.b\n",
        "b.py": f"def late():\n    from {pkg} import a\n    return a\n",
        "synth/__init__.py": f"from {pkg}.synth.line import render\n",
        "synth/augment.py": "STYLE = 1\n",
        "synth/line.py": f"from {pkg}.synth import augment\nfrom {pkg}.synth.augment import STYLE\n\n"
                         "def render():\n    return augment.STYLE + STYLE\n",
        "real/__init__.py": f"from {pkg}.real.mod import x\ny = 1\n",
        "real/mod.py": f"def x():\n    from {pkg}.real import y\n    return y\n",
    }
    for name, text in files.items():
        (tmp_path / pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / name).write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))

    graph = build_graph(pkg)
    cycles = import_cycles(graph)
    assert sorted(cycles) == [[f"{pkg}.a", f"{pkg}.b", f"{pkg}.a"],
                              [f"{pkg}.real", f"{pkg}.real.mod", f"{pkg}.real"]], cycles
    assert f"{pkg}.b:2 from {pkg} import a" in describe_chain(graph, cycles[0])
    assert graph.find_modules_directly_imported_by(f"{pkg}.synth.line") == {f"{pkg}.synth.augment"}


def test_strongly_connected_self_loop_and_chain():
    edges = {"a": ["a"], "b": ["c"], "c": ["d"], "d": ["b"], "e": ["b"]}
    components = strongly_connected(sorted(edges), edges)
    assert sorted(components) == [["a"], ["b", "c", "d"], ["e"]]
    assert _shortest_cycle("a", {"a"}, edges) == ["a", "a"]
    assert _shortest_cycle("b", {"b", "c", "d"}, edges) == ["b", "c", "d", "b"]
