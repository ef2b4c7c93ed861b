"""`contentforge --help`: wall time and modules imported, for two source trees, interleaved.

    python bench/bench_cli.py NEW_TREE[:MODULE] OLD_TREE[:MODULE] [--runs 21]

MODULE is what `python -m` runs in that tree (``cli`` now, ``contentforge.cli`` before the CLI moved
out of the API package). Both run with this interpreter; the tree's folder comes first on sys.path.
Also prints the size of a virtualenv holding the bare package (`pip install .`, no extras).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from common import sh

COUNT = ("import runpy, sys; sys.argv = ['contentforge', '--help']\n"
         "try:\n    runpy.run_module({module!r}, run_name='__main__')\n"
         "except SystemExit:\n    pass\nprint(len(sys.modules), file=sys.stderr)")


def parse(spec: str) -> tuple[Path, str]:
    tree, _, module = spec.partition(":")
    return Path(tree).resolve(), module or "cli"


def run_once(tree: Path, module: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", module, "--help"], cwd=tree, check=True, capture_output=True)
    return time.perf_counter() - start


def modules(tree: Path, module: str) -> int:
    out = subprocess.run([sys.executable, "-c", COUNT.format(module=module)], cwd=tree, check=True,
                         capture_output=True, text=True)
    return int(out.stderr.strip().splitlines()[-1])


def bare_venv_mb(tree: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(tree, src, ignore=shutil.ignore_patterns(".venv", ".git", "tests", "bench", "*.egg-info",
                                                                  "build", "node_modules", "contentforge-data"))
        env = Path(tmp) / "venv"
        venv.EnvBuilder(with_pip=True).create(env)
        subprocess.run([env / "bin" / "python", "-m", "pip", "install", "-q", str(src)], check=True)
        site = next((env / "lib").glob("python3*/site-packages"))
        return sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("new")
    ap.add_argument("old")
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    trees = {"new": parse(args.new), "old": parse(args.old)}
    times: dict[str, list[float]] = {k: [] for k in trees}
    for tree, module in trees.values():
        run_once(tree, module)  # warm the page cache and .pyc files
    for _ in range(args.runs):
        for name, (tree, module) in trees.items():
            times[name].append(run_once(tree, module))
    cpu = sh("lscpu | grep 'Model name' | cut -d: -f2 | xargs")
    print(f"machine: {sh('nproc')} cores, {cpu}")
    for name, (tree, module) in trees.items():
        print(f"{name}: python -m {module} --help  median {statistics.median(times[name]) * 1000:.0f} ms "
              f"(p10 {statistics.quantiles(times[name], n=10)[0] * 1000:.0f}, runs {args.runs}), "
              f"{modules(tree, module)} modules")
    print(f"ratio old/new: {statistics.median(times['old']) / statistics.median(times['new']):.2f}x")
    print(f"bare install (pip install ., no extras), site-packages: {bare_venv_mb(trees['new'][0]):.1f} MB "
          f"(old tree: {bare_venv_mb(trees['old'][0]):.1f} MB)")


if __name__ == "__main__":
    main()
