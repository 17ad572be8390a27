"""Each package of vqtune reaches another only through its public names: a private module (``_name.py``) is its
own package's business, free to change without breaking the others."""

import ast
from pathlib import Path

import vqtune
import vqtune.study

PACKAGE = Path(vqtune.__file__).parent


def _private_imports(path: Path) -> list[str]:
    """The imports in ``path`` of another package's private module, as ``module: name``."""
    own = path.relative_to(PACKAGE.parent).parts[:2]  # ("vqtune", "tune") for vqtune/tune/_runner.py
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        for module in modules:
            parts = tuple(module.split("."))
            if parts[0] == "vqtune" and any(p.startswith("_") for p in parts[2:]) and parts[:2] != own:
                found.append(f"{path.relative_to(PACKAGE.parent)}: {module}")
    return found


def test_no_package_imports_another_packages_private_module():
    found = [line for path in sorted(PACKAGE.rglob("*.py")) for line in _private_imports(path)]
    assert found == []


def test_requeue_once_is_public_in_vqtune_study():
    assert "requeue_once" in vqtune.study.__all__
    from vqtune.study import requeue_once  # noqa: F401


def _imported(path: Path) -> set[str]:
    """The vqtune modules ``path`` imports, anywhere in it (a function's lazy import and an import for type
    checkers too), as dotted names: a package's name for what comes from its ``__init__``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vqtune"):
            for alias in node.names:  # from vqtune.models import pixelcnn: a module, not a name
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _module_path(candidate) else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("vqtune"))
    return found


def _module_path(module: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.exists()), None)


def _name_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_circle_between_modules():
    """No module reaches, through the modules it imports, a module that imports it: each part of a package
    imports its siblings by their own names, never its package's ``__init__`` that gathers it."""
    graph = {_name_of(path): {m for m in _imported(path) if _module_path(m)} for path in PACKAGE.rglob("*.py")}
    circles = []
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            todo.extend(graph.get(module, ()))
        if start in seen:
            circles.append(start)
    assert circles == []
