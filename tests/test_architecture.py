"""The house rules of the code, checked on the source: one-way imports by floor, no cycles, no borrowed private names,
no function over 80 lines.

Every module of ``core/``, ``operators/``, ``panels/`` and the add-on's root modules is parsed (``ast``), with the
imports inside functions; the floors come from the README's architecture block, so the diagram and the check
cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHECKED_PACKAGES = ("core", "operators", "panels")
LONG_FUNCTION_LINES = 80
FLOOR_LINE = re.compile(r"^floor (\d+)\s+.*?\.{2,} (.+)$")


@dataclass
class Module:
    name: str                                          # dotted, relative to the add-on root ("core.texture.unwrap")
    path: Path
    tree: ast.Module
    imports: set[str] = field(default_factory=set)     # modules this one imports (anywhere in the file)
    private_uses: list[str] = field(default_factory=list)   # "_name of module" used from another module


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    files = [p for package in CHECKED_PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    return files + sorted(p for p in REPO.glob("*.py"))


def parse_modules() -> dict[str, Module]:
    modules = {module_name(p): Module(module_name(p), p, ast.parse(p.read_text(), str(p))) for p in source_files()}
    for module in modules.values():
        _read_imports(module, modules)
    return modules


def _absolute(module: Module, node: ast.ImportFrom) -> str | None:
    """The dotted target of ``from X import ...`` relative to the add-on root, or None outside the add-on."""
    if node.level == 0:
        prefix = "studio_avatar"
        if node.module is None or not (node.module == prefix or node.module.startswith(prefix + ".")):
            return None
        return node.module[len(prefix) + 1:]
    package = module.name.split(".") if module.name else []
    if module.path.name != "__init__.py":
        package = package[:-1]
    base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join(base + ([node.module] if node.module else []))


def _read_imports(module: Module, modules: dict[str, Module]) -> None:
    aliases: dict[str, str] = {}                       # local name -> imported module
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom):
            target = _absolute(module, node)
            if target is None:
                continue
            for alias in node.names:
                child = f"{target}.{alias.name}" if target else alias.name
                if child in modules:                   # `from . import color`: a module
                    module.imports.add(child)
                    aliases[alias.asname or alias.name] = child
                else:
                    module.imports.add(target)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and target != module.name:
                        module.private_uses.append(f"{alias.name} of {target}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("studio_avatar."):
                    target = alias.name[len("studio_avatar."):]
                    module.imports.add(target)
                    aliases[alias.asname or alias.name] = target
    for node in ast.walk(module.tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            module.private_uses.append(f"{node.attr} of {aliases[node.value.id]}")
    module.imports = {name for name in module.imports if name in modules and name != module.name}


def room_of(name: str) -> str:
    """A package under core/ (core.texture), a module directly in core/ (core.color), operators, panels, or a root
    module (registration; the root package is ``__init__``)."""
    parts = name.split(".") if name else ["__init__"]
    if parts[0] == "core" and len(parts) >= 2:
        return ".".join(parts[:2])
    return parts[0]


def readme_floors() -> dict[str, int]:
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- floors:", 1)[1].split("```", 2)[1]
    floors: dict[str, int] = {}
    current = None
    for line in block.splitlines():
        match = FLOOR_LINE.match(line.strip())
        if match:
            current, rooms = int(match.group(1)), match.group(2)
        elif line.strip() and current is not None:
            rooms = line.strip()                     # a continuation line of the floor above
        else:
            continue
        floors.update({room: current for room in rooms.split()})
    return floors


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return parse_modules()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_imports_inside_functions_and_private_names():
    source = "def f():\n    from ..texture.unwrap import _band\n    from .. import color\n    return color._table\n"
    module = Module("core.gmug.stage", REPO / "core/gmug/stage.py", ast.parse(source))
    known = {name: None for name in ("core.texture.unwrap", "core.color", "core")}
    _read_imports(module, known)
    assert module.imports == {"core.texture.unwrap", "core.color"}
    assert sorted(module.private_uses) == ["_band of core.texture.unwrap", "_table of core.color"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_files(modules):
    cycles = _cycles({name: module.imports for name, module in modules.items()})
    assert cycles == [], f"import cycles among files: {cycles}"


def test_no_import_cycle_among_rooms(modules):
    graph: dict[str, set[str]] = {}
    for name, module in modules.items():
        graph.setdefault(room_of(name), set()).update(room_of(t) for t in module.imports if room_of(t) != room_of(name))
    cycles = _cycles(graph)
    assert cycles == [], f"rooms that import each other: {cycles}"


def test_every_room_is_on_a_floor_of_the_readme(modules):
    floors = readme_floors()
    rooms = {room_of(name) for name in modules}
    assert sorted(rooms - set(floors)) == [], "rooms missing from the README's floors block"
    assert sorted(set(floors) - rooms) == [], "the README's floors block names rooms that do not exist"


def test_imports_go_to_the_same_floor_or_down(modules):
    floors = readme_floors()
    upward = sorted(f"{name} (floor {floors[room_of(name)]}) imports {target} (floor {floors[room_of(target)]})"
                    for name, module in modules.items() for target in module.imports
                    if floors.get(room_of(target), -1) > floors.get(room_of(name), 99))
    assert upward == [], "imports from a lower floor to a higher one:\n" + "\n".join(upward)


def test_the_ground_floor_imports_no_other_room_of_core(modules):
    ground = ("core.render", "core.color", "core.skin")
    leaks = sorted(f"{name} imports {target}" for name, module in modules.items() if room_of(name) in ground
                   for target in module.imports if room_of(target) not in ground)
    assert leaks == [], leaks


def test_no_module_uses_another_modules_private_names(modules):
    uses = sorted(f"{name}: {use}" for name, module in modules.items() for use in module.private_uses)
    assert uses == [], "private names used across modules:\n" + "\n".join(uses)


def test_no_function_over_80_lines(modules):
    long = sorted(f"{module.path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
                  for name, module in modules.items() if name.split(".")[0] in CHECKED_PACKAGES
                  for node in ast.walk(module.tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.end_lineno - node.lineno + 1 > LONG_FUNCTION_LINES)
    assert long == [], "functions over 80 lines:\n" + "\n".join(long)
