"""The migration files shipped in ``schema/migrations``: parsing and checksums, no database."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

#: A file whose first lines contain this marker runs outside a transaction, one statement at a time
#: (needed for CREATE INDEX CONCURRENTLY).
NO_TRANSACTION_MARKER = "-- contentforge:no-transaction"

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    text: str

    @property
    def filename(self) -> str:
        return f"{self.version}_{self.name}.sql"

    @cached_property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        head = "\n".join(self.text.splitlines()[:5])
        return NO_TRANSACTION_MARKER not in head

    def statements(self) -> list[str]:
        """Split a non-transactional file into statements.

        Such files hold only plain statements (no dollar quoting), each ending with ``;`` at the end
        of a line; comments are dropped.
        """
        out: list[str] = []
        buf: list[str] = []
        for line in self.text.splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith("--"):
                continue
            buf.append(line)
            if stripped.endswith(";"):
                out.append("\n".join(buf).strip().rstrip(";"))
                buf = []
        if buf:
            raise ValueError(f"{self.filename}: last statement does not end with ';'")
        return out


def migrations_dir() -> Path:
    return Path(str(resources.files("schema") / "migrations"))


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """All migration files, in order. Raises ValueError on a misnamed or duplicate version."""
    directory = directory or migrations_dir()
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_what_it_does.sql")
        version, name = m.groups()
        if version in found:
            raise ValueError(f"two migration files share version {version}")
        found[version] = Migration(version, name, path.read_text(encoding="utf-8"))
    return list(found.values())
