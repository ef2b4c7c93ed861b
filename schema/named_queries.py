"""Runtime SQL by name: ``schema/queries/<file>.sql``, each query under a ``-- name: <name>`` line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import LiteralString, cast

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def queries(file: str) -> Mapping[str, LiteralString]:
    """The named queries of ``schema/queries/<file>.sql``, read once: ``{query name: SQL}``."""
    text = (resources.files("schema") / "queries" / f"{file}.sql").read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    out: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in out:
            raise ValueError(f"schema/queries/{file}.sql defines {name!r} twice")
        # Shipped files only, never user input: safe to treat as literal SQL.
        out[name] = cast(LiteralString, body.strip().rstrip(";"))
    return out
