"""Imports flow one way: core ← schema ← API ← workers/scheduler ← cli; jobs imports only the error roots."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("contentforge", "schema", "jobs", "workers", "scheduler", "cli")
CORE = {"contentforge.settings", "contentforge.db", "contentforge.errors", "contentforge.logging",
        "contentforge.pooler", "contentforge.redaction"}


def _layer(module: str) -> str:
    if module in CORE or module == "contentforge":
        return "core"
    return module.split(".")[0]


#: What each layer may import (besides itself, the standard library and third-party packages).
ALLOWED = {
    "core": {"core"},
    "jobs": {"jobs"},
    "schema": {"core", "schema"},
    "contentforge": {"core", "schema", "contentforge"},
    "workers": {"core", "schema", "contentforge", "jobs", "workers"},
    "scheduler": {"core", "schema", "contentforge", "scheduler"},
    "cli": set(PACKAGES) | {"core"},
}


#: Single modules a layer may import besides its allowed layers: the roots of the error tree
#: (PermanentError, TransientError), in a module that imports nothing, shared by jobs and the core.
ALLOWED_MODULES = {"jobs": {"contentforge.errors"}}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found.append((".".join(p for p in parts if p != "__init__"), path))
    return found


def _imports(path: Path) -> set[str]:
    """Every module of ours imported anywhere in the file, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def _resolve(name: str, known: set[str]) -> str:
    """`from contentforge import api` names the module contentforge.api; `from jobs.x import f` names jobs.x."""
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_module_imports_only_its_own_layer_and_below(module: str, path: Path) -> None:
    """No module imports a layer above its own."""
    known = {m for m, _ in _modules()}
    layer = _layer(module)
    upward = sorted(
        target for name in _imports(path)
        if _layer(target := _resolve(name, known)) not in ALLOWED[layer]
        and target not in ALLOWED_MODULES.get(layer, set())
    )
    assert not upward, f"{module} ({layer}) imports {upward}"


def test_reading_settings_loads_no_media_library() -> None:
    """Importing the settings and the enqueue API loads neither Pillow, ffmpeg-python, numpy nor a speech engine."""
    probe = ("import sys, contentforge.settings, contentforge.api, schema; "
             "heavy = ('PIL', 'ffmpeg', 'numpy', 'faster_whisper', 'whisper', 'dramatiq', 'blurhash', 'boto3'); "
             "print(','.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_error_roots_import_nothing() -> None:
    """contentforge.errors, which jobs may import, imports nothing itself (not even the standard library)."""
    tree = ast.parse((REPO / "contentforge" / "errors.py").read_text(encoding="utf-8"))
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_jobs_errors_load_nothing_of_ours_but_the_error_roots() -> None:
    """Importing jobs.errors loads, of our packages, only jobs and contentforge.errors."""
    probe = ("import sys, jobs.errors; ours = ('contentforge', 'schema', 'jobs', 'workers', 'scheduler', 'cli'); "
             "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ours)))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "contentforge,contentforge.errors,jobs,jobs.errors"
