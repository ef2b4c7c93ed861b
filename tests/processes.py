"""Looking at this process's children through /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path


def children_named(comm: str) -> list[int]:
    """PIDs of the processes called ``comm`` whose parent is this process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if name == comm and ppid == os.getpid():
            found.append(int(entry.name))
    return found
