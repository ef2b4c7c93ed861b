"""Helpers shared by the benchmark scripts (run as `python bench/<script>.py`, so importable as `common`)."""

from __future__ import annotations

import subprocess

import psycopg


def conninfo(base: str, **over: str) -> str:
    """``base`` with some connection parameters replaced (dbname, user, ...)."""
    info = psycopg.conninfo.conninfo_to_dict(base)
    info.update(over)
    return psycopg.conninfo.make_conninfo(**info)


def sh(cmd: str) -> str:
    """Output of a fixed shell one-liner that describes the machine (nproc, lscpu, free)."""
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.rstrip()
    except Exception as exc:  # informational only
        return f"({cmd}: {exc})"
