"""The house rules of the package layout, checked on the source (AST) and at import time.

- ``raytag.analysis`` (the report) imports nothing from ``pipeline``, ``train`` or
  ``models``, and neither Ray nor torch, even transitively: reports run anywhere.
- The pure core (``io``, ``geometry``, ``strain``, ``phantom``, ``tracking``, ``metrics``,
  ``results``, ``failures``) imports neither Ray nor torch.
- No module imports another package's private names (``from raytag.x import _y``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "raytag"


def _imports(path: Path):
    """(module imported, names) for every import statement of a file."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "raytag" and len(parts) > 1 else module


def test_analysis_imports_no_upper_layer():
    for path in (ROOT / "analysis").glob("*.py"):
        for module, _ in _imports(path):
            assert module.split(".")[0] not in ("ray", "torch"), (path.name, module)
            assert not module.startswith(("raytag.pipeline", "raytag.train", "raytag.models")), (
                path.name, module)


@pytest.mark.parametrize("package", ["raytag.analysis.report", "raytag.tracking.measure",
                                     "raytag.io", "raytag.phantom.families", "raytag.metrics"])
def test_pure_layers_do_not_load_ray_or_torch(package):
    code = (f"import sys, {package}; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'torch') "
            "or m.startswith(('raytag.pipeline', 'raytag.train', 'raytag.models'))); "
            "print(','.join(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"{package} loads {done.stdout.strip()}"


def test_no_module_imports_another_packages_private_names():
    offences = []
    for path in ROOT.rglob("*.py"):
        own = _package("raytag." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
        for module, names in _imports(path):
            if not module.startswith("raytag") or _package(module) == own:
                continue
            offences += [f"{path.relative_to(ROOT)}: {module}.{n}" for n in names
                         if n.startswith("_") and not n.startswith("__")]
    assert offences == []


def test_every_docs_reference_in_the_code_points_to_a_file_that_exists():
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1]
    missing = []
    for path in [*root.glob("raytag/**/*.py"), *root.glob("tests/*.py"),
                 *root.glob("benchmarks/*.py"), *root.glob("jobs/*.py")]:
        text = path.read_text()
        for ref in re.findall(r"\bdocs/[\w./-]+\.md", text):
            if not (root / ref).is_file():
                missing.append(f"{path.relative_to(root)}: {ref}")
        for old in ("DESIGN.md", "REALISM.md", "shared/"):
            if old in text and path.name != "test_layers.py":
                missing.append(f"{path.relative_to(root)}: cites {old} (not in the repository)")
    assert not missing, missing
