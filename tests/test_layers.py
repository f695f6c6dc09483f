"""The layering of gml, checked on the source of every module (an AST walk, so imports inside
functions count as much as those at the top; imports under ``if TYPE_CHECKING:`` do not, as
they never run).

Imports only go down:

    commands (gml.cli) → workflows (gml.train, gml.cv, gml.table)
    → scoring and evaluation (gml.listener, gml.evaluation, gml.compare, ...) → gml.checkpoint
    → gml.module → gml.data → parts (features, backbones, heads, augment, metrics, each on its
    own) → foundation (gml.stats, gml.errors, gml.atomic, ...)

and besides: the scoring path does not use the training data module, no module uses another
module's private (``_name``) names, and the import graph has no cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GML = Path(__file__).resolve().parents[1] / "gml"

#: Each module's floor: a module imports only from its own floor or below. The longest
#: matching prefix decides (``gml.data.demo`` is on ``gml.data``'s floor).
FLOORS = {
    # foundation: no gml imports but each other
    "gml.errors": 0,
    "gml.atomic": 0,
    "gml.stats": 0,
    "gml.student_t": 0,
    "gml.quiet": 0,
    "gml.progress": 0,
    "gml.text_table": 0,
    "gml.checkpoint_path": 0,
    "gml.configs": 0,
    "gml.version": 0,
    # parts: swappable, each independent of the others
    "gml.features": 1,
    "gml.backbones": 1,
    "gml.heads": 1,
    "gml.augment": 1,
    "gml.metrics": 1,
    # data feeds the module and knows no command
    "gml.data": 2,
    "gml.network": 2,
    "gml.module": 3,
    "gml.checkpoint": 4,
    "gml.checkpoint_file": 4,
    # scoring and evaluation
    "gml.listener": 5,
    "gml.inference": 5,
    "gml.scoring": 5,
    "gml.cpu_inference": 5,
    "gml.evaluation": 5,
    "gml.ensemble": 5,
    "gml.calibration": 5,
    "gml.baselines": 5,
    "gml.report": 5,
    "gml.plots": 5,
    "gml.pairs": 5,
    "gml.compare": 5,
    # workflows
    "gml.train": 6,
    "gml.cv": 6,
    "gml.table": 6,
    # commands, and the package's own door
    "gml.cli": 7,
    "gml": 8,
    "gml.__main__": 8,
}
PARTS = ("gml.features", "gml.backbones", "gml.heads", "gml.augment", "gml.metrics")
#: Modules of the scoring path, which must not depend on the training data module.
SCORING = ("gml.listener", "gml.inference", "gml.scoring")
TRAINING_DATA = "gml.data.datamodule"


def module_files(root: Path = GML) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_files()


def floor(name: str) -> int | None:
    keys = [k for k in FLOORS if name == k or name.startswith(k + ".")]
    return FLOORS[max(keys, key=len)] if keys else None


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (annotations only: never imported)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def imports_of(
    name: str, source: str, modules: dict[str, Path] = MODULES
) -> tuple[set[str], list[str]]:
    """The gml modules ``name`` imports (anywhere in its code), and the private names it takes
    from other modules (``from gml.x import _y``; ``x._y`` on a module it imported).

    Returns:
        ``(imported modules, ["gml.x._y", ...])``.
    """
    tree = ast.parse(source)
    skip = _type_checking_nodes(tree)
    is_package = name in modules and modules[name].name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    imported: set[str] = set()
    private: list[str] = []
    aliases: dict[str, str] = {}  # local name → gml module it is bound to
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "gml" or a.name.startswith("gml."):
                    imported.add(a.name)
                    if a.asname:
                        aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 packages
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            if not (base == "gml" or base.startswith("gml.")):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in modules:  # a submodule: `from gml import report`
                    imported.add(sub)
                    aliases[a.asname or a.name] = sub
                    continue
                imported.add(base)
                if a.name.startswith("_") and not a.name.startswith("__") and base != name:
                    private.append(f"{base}.{a.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and aliases[node.value.id] != name
        ):
            private.append(f"{aliases[node.value.id]}.{node.attr}")
    imported.discard(name)
    return imported, private


def violations(name: str, source: str, modules: dict[str, Path] = MODULES) -> list[str]:
    """What is wrong with ``name``'s imports (empty: nothing)."""
    imported, private = imports_of(name, source, modules)
    own = floor(name)
    found = [f"uses the private name {p}" for p in private]
    for target in sorted(imported):
        if target not in modules and target != "gml":
            continue  # `import gml.x.y` of something that is not a module: reported by Python
        if floor(target) > own:
            found.append(f"imports {target} from a higher floor ({floor(target)} > {own})")
        part = next((p for p in PARTS if name == p or name.startswith(p + ".")), None)
        other = next((p for p in PARTS if target == p or target.startswith(p + ".")), None)
        if part and other and other != part:
            found.append(f"imports {target}: a part imports no other part")
        if name.startswith(SCORING) and target == TRAINING_DATA:
            found.append(f"imports {target}: scoring does not use the training data module")
    return found


def test_every_module_has_a_floor():
    assert MODULES and all(floor(m) is not None for m in MODULES), [
        m for m in MODULES if floor(m) is None
    ]


@pytest.mark.parametrize("name", [(m) for m in MODULES])
def test_imports_go_down(name):
    assert violations(name, MODULES[name].read_text(encoding="utf-8")) == []


def test_no_import_cycles():
    graph = {m: imports_of(m, p.read_text(encoding="utf-8"))[0] for m, p in MODULES.items()}
    cycles = _cycles(graph)
    assert cycles == [], cycles


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, targets = work[-1]
            for w in targets:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


# -- the checker itself catches what it is for ----------------------------------------------


def test_the_checker_sees_imports_inside_functions_and_private_names():
    source = (
        "from gml.errors import GMLError\n"
        "def f():\n"
        "    from gml.cli import main\n"
        "    from gml.data.cache import _progress\n"
        "    import gml.plots as plots\n"
        "    return plots._new_figure()\n"
    )
    found = violations("gml.heads.base", source)
    assert any("gml.cli from a higher floor" in v for v in found)
    assert any("gml.data.cache from a higher floor" in v for v in found)
    assert "uses the private name gml.data.cache._progress" in found
    assert "uses the private name gml.plots._new_figure" in found
    assert not any("gml.errors" in v for v in found)


def test_the_checker_sees_parts_and_the_scoring_rule_but_not_type_checking():
    assert violations("gml.heads.base", "from gml.features import GammatoneFrontend\n") == [
        "imports gml.features: a part imports no other part"
    ]
    assert violations("gml.listener", "def f():\n    from gml.data.datamodule import x\n")
    typing_only = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gml.cli import main\n"
    )
    assert violations("gml.heads.base", typing_only) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
