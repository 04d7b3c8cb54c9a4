"""The layers only depend downwards: app.main → app.gui → app.core → services → (nothing of ours).

Two checks: a static scan of every import statement (catches lazy imports inside functions), and
a real import of every core/services module in a fresh interpreter, inspecting ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QT = ("PySide6", "shiboken6", "qasync")
FORBIDDEN = {
    "app/core": QT,
    "services": (
        *QT,
        "app",
        "grpc",
        "grpc_health",
        "zeroconf",
        "huggingface_hub",
        "modelscope",
        "modelscope_hub",
    ),
}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                roots.add(node.args[0].value.split(".")[0])
    return roots


def _modules(package: str) -> list[str]:
    base = ROOT / package
    names = []
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_static_imports_respect_layers(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imported_roots(path) & set(FORBIDDEN[package])
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not offenders, "layer violations:\n" + "\n".join(offenders)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_the_layer_loads_nothing_forbidden(package: str) -> None:
    modules = _modules(package)
    script = (
        "import importlib, json, sys\n"
        f"mods = {modules!r}\n"
        "failed = {}\n"
        "for m in mods:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ImportError as exc:\n"
        "        failed[m] = repr(exc)\n"
        "print(json.dumps({'loaded': sorted({k.split('.')[0] for k in sys.modules}), 'failed': failed}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    loaded = set(report["loaded"])
    forbidden = set(FORBIDDEN[package]) - ({"app"} if package == "app/core" else set())
    assert not (loaded & forbidden), f"importing {package} loaded {sorted(loaded & forbidden)}"
