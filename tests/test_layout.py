"""The package's shape, as docs/architecture.md states it: small modules, short functions, imports at the
top, no import circle, and an architecture document that names every module. These are read off the source
with `ast`, so a change that breaks one fails here with the file and line."""
from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gpt2"
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 59
MAX_LAZY_IMPORTS = 10  # imports of gpt2 modules inside functions, outside the CLI (each says why)


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = ("gpt2",) + path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported(module: str, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    """The gpt2 modules one import statement reaches (`from gpt2.x import y` reaches gpt2.x.y when that is
    a module, else gpt2.x)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "gpt2"]
    base = node.module or ""
    if node.level:
        package = module.split(".") if known[module].name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([base] if base else []))
    if base.split(".")[0] != "gpt2":
        return []
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]


def lazy_imports() -> list[str]:
    """`file:line` of every gpt2 import inside a function, outside cli.py and commands/."""
    known = modules()
    found = []
    for name, path in known.items():
        if name == "gpt2.cli" or name.startswith("gpt2.commands"):
            continue
        for function in ast.walk(parse(path)):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and imported(name, node, known):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    return sorted(set(found))


def test_no_module_is_over_400_lines():
    long = {str(path.relative_to(SRC)): n for path in modules().values()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_60_lines_or_more():
    long = []
    for path in modules().values():
        for node in ast.walk(parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "functions of 60 lines or more: " + ", ".join(long)


def test_imports_sit_at_the_top_of_modules():
    found = lazy_imports()
    assert len(found) <= MAX_LAZY_IMPORTS, f"{len(found)} gpt2 imports inside functions: {found}"


def test_no_import_circle_at_module_level():
    """Module-level imports only (those run at import time); a circle there means two modules that cannot be
    understood, or loaded, one before the other. A package's __init__ importing its own modules is not a
    circle of concern, so edges into a package's own children are dropped."""
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for node in parse(path).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in imported(name, node, known):
                    while target not in known and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target != name and not target.startswith(name + ".") and target in known:
                        edges[name].add(target)
    # a package's face re-exports its children: importing gpt2.x.y runs gpt2.x first, which is not an edge
    # of y's own design, so parents are not followed as importers of their children
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(known):
        if name not in state and (cycle := visit(name)):
            raise AssertionError("import circle: " + " -> ".join(cycle))


def test_the_architecture_document_names_every_module():
    text = DOC.read_text()
    missing = [str(path.relative_to(SRC)) for path in modules().values()
               if str(path.relative_to(SRC)) not in text and path.name != "__init__.py"]
    assert not missing, f"docs/architecture.md does not name: {missing}"
    named = set(re.findall(r"`([a-z_]+(?:/[a-z_]+)*\.py)`", text))
    gone = [n for n in named if not n.startswith(("tests/", "benchmarks/"))
            if not (SRC / n).is_file() and not any(p.name == n for p in SRC.rglob(n))]
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"
