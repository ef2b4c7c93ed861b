"""The container image: size, the layer a one-line code change produces, cold and warm build times.

    .venv/bin/python bench/bench_image.py            # as root; starts its own Docker engine

It uses the container test's engine and locally built base images (tests/containers/engine.py),
builds the project image with an empty layer cache (cold: a private data root; the base images are
imported and built first, not timed), builds it again unchanged (warm), then again after a one-line
change to a Python module (the layers that change are listed with their sizes). ``--before COMMIT``
also builds the Dockerfile of COMMIT the same way (its BuildKit heredoc replaced by the script it
became, so the classic builder can run it) for the before/after comparison.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.containers import engine as eng  # noqa: E402 - importable once the tree is on sys.path


def _context(tmp: Path, dockerfile: str | None) -> Path:
    """A copy of the build context (what .dockerignore lets through does not matter: same files)."""
    ctx = tmp / "ctx"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file():
            (ctx / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, ctx / name)
    if dockerfile is not None:
        (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _old_dockerfile(commit: str) -> str:
    text = subprocess.run(["git", "show", f"{commit}:Dockerfile"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout
    lines = text.splitlines()
    out: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith("# syntax="):
            continue
        if line.startswith("RUN python - <<'PY'"):
            out.append("COPY scripts/requirements-from-pyproject ./scripts/")
            out.append('RUN python scripts/requirements-from-pyproject pyproject.toml "$EXTRAS" > /tmp/requirements.txt')
            skipping = True
            continue
        if skipping:
            skipping = line != "PY"
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def _build(e: eng.Engine, ctx: Path, tag: str) -> float:
    t0 = time.monotonic()
    e.docker("build", "--network=host", "-t", tag, ctx, timeout=3600)
    return time.monotonic() - t0


def _layers(e: eng.Engine, tag: str) -> list[tuple[str, int, str]]:
    out = e.docker("history", "--no-trunc", "--human=false", "--format", "{{.ID}}\t{{.Size}}\t{{.CreatedBy}}",
                   tag).stdout
    rows = []
    for line in out.splitlines():
        ident, size, created = line.split("\t", 2)
        rows.append((ident, int(size), created[:90]))
    return rows


def _size(e: eng.Engine, tag: str) -> int:
    return int(e.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


def measure(e: eng.Engine, label: str, dockerfile: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="cfbench-") as tmp:
        ctx = _context(Path(tmp), dockerfile)
        cold = _build(e, ctx, f"bench-{label}:1")
        warm = _build(e, ctx, f"bench-{label}:1")
        before = {i for i, _, _ in _layers(e, f"bench-{label}:1")}
        settings = ctx / "contentforge" / "settings.py"
        settings.write_text(settings.read_text() + "\n# one-line change for bench_image.py\n")
        edit = _build(e, ctx, f"bench-{label}:2")
        new = [(s, c) for i, s, c in _layers(e, f"bench-{label}:2") if i not in before and s > 0]
        mb = 1e6
        print(f"\n[{label}] image {_size(e, f'bench-{label}:1') / mb:.0f} MB; cold build {cold:.0f} s, "
              f"warm (unchanged) {warm:.1f} s, after a one-line code change {edit:.0f} s")
        print(f"[{label}] new layers after the one-line change: {sum(s for s, _ in new) / mb:.2f} MB")
        for s, c in new:
            print(f"    {s / mb:9.2f} MB  {c}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", metavar="COMMIT", help="also measure the Dockerfile of this commit")
    args = ap.parse_args()
    runs = [("after", None)] + ([("before", _old_dockerfile(args.before))] if args.before else [])
    for label, dockerfile in runs:
        # A private data root per run: every build below starts with an empty layer cache.
        e = eng.start_engine(data_root=Path(tempfile.mkdtemp(prefix="cfbench-docker-", dir="/var/tmp")))
        try:
            with tempfile.TemporaryDirectory(prefix="cfbench-base-") as tmp:
                eng.ensure_base_images(e, Path(tmp), ["python:3.11-slim-bookworm"])
            measure(e, label, dockerfile)
        finally:
            e.stop()

if __name__ == "__main__":
    main()
