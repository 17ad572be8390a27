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
