"""The layering, checked by reading every module's imports (module-level and inside functions).

Capability packages (snapshots, tracking, distributed, registry, drift, lineage) form a graph
without cycles, each package's own modules too, and none of them imports a face (magics,
server, display, api), IPython or tornado, or another package's private names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import jupyter_mlops

ROOT = Path(jupyter_mlops.__file__).parent
CAPABILITIES = ("snapshots", "tracking", "distributed", "registry", "drift", "lineage")
FACES = ("magics", "server", "display", "api")
FRAMEWORKS = ("IPython", "tornado")

# Violations present when this test was written (issue 14). The list only shrinks: a new
# violation fails the test, and so does an entry here that no longer happens (delete it).
# Names are relative to jupyter_mlops.
KNOWN_VIOLATIONS: set[str] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py")) if "labextension" not in p.parts}


def absolute(module: str, node: ast.ImportFrom) -> str:
    """The module an ``import from`` names, relative levels resolved against ``module``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package(MODULES[module]):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str) -> Iterator[tuple[str, str | None]]:
    """``(imported module, imported name or None)`` for every import anywhere in ``module``."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield (submodule, None) if submodule in MODULES else (source, alias.name)


def private_attributes(module: str) -> Iterator[str]:
    """``pkg.mod._name`` for every ``alias._name`` where ``alias`` is an imported module."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and is_private(node.attr)
        ):
            yield f"{aliases[node.value.id]}.{node.attr}"


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def capability(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in CAPABILITIES else None


def within(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == root or module.startswith(f"{root}.") for root in roots)


def internal_edges() -> set[tuple[str, str]]:
    """Module -> module edges inside jupyter_mlops (an import of a package's name whose parent
    package is implied by Python is not an edge: every submodule would otherwise loop)."""
    edges = set()
    for module in MODULES:
        for target, _ in imports(module):
            if target in MODULES and target != module and not module.startswith(f"{target}."):
                edges.add((module, target))
    return edges


def find_cycle(edges: set[tuple[str, str]]) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def violations() -> set[str]:
    found = set()
    faces = tuple(f"jupyter_mlops.{face}" for face in FACES)
    for module in MODULES:
        own = capability(module)
        if own is None:
            continue
        for target, name in imports(module):
            if within(target, faces):
                found.add(f"{module} imports a face: {target}")
            elif within(target, FRAMEWORKS):
                found.add(f"{module} imports {target.split('.')[0]}")
            elif name and is_private(name) and capability(target) not in (None, own):
                found.add(f"{module} uses a private name: {target}.{name}")
        for used in private_attributes(module):
            if capability(used) not in (None, own):
                found.add(f"{module} uses a private name: {used}")
    return {line.replace("jupyter_mlops.", "") for line in found}


def test_the_reader_sees_function_level_and_relative_imports() -> None:
    found = set(imports("jupyter_mlops.distributed.rank_logging"))
    assert ("jupyter_mlops.tracking.client", "mlflow_client") in found  # inside a function
    assert ("jupyter_mlops.errors", "MLOpsUsageError") in found  # module level, relative
    assert ("jupyter_mlops.distributed.pool", None) in set(imports("jupyter_mlops.distributed"))
    assert find_cycle({("a", "b"), ("b", "c"), ("c", "a")}) == ["a", "b", "c", "a"]
    assert find_cycle({("a", "b"), ("b", "c")}) is None


def test_capability_packages_form_no_cycle() -> None:
    packages = {
        (capability(a), capability(b))
        for a, b in internal_edges()
        if capability(a) and capability(b) and capability(a) != capability(b)
    }
    assert find_cycle(packages) is None, find_cycle(packages)


@pytest.mark.parametrize("package", CAPABILITIES)
def test_modules_inside_a_capability_form_no_cycle(package: str) -> None:
    edges = {(a, b) for a, b in internal_edges() if capability(a) == capability(b) == package}
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_capabilities_import_no_face_no_framework_no_private_name() -> None:
    found = violations()
    new = sorted(found - KNOWN_VIOLATIONS)
    fixed = sorted(KNOWN_VIOLATIONS - found)
    assert not new, "new layering violations:\n" + "\n".join(new)
    assert not fixed, "fixed, so delete from KNOWN_VIOLATIONS:\n" + "\n".join(fixed)
