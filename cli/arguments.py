"""What the subcommands share: argument types, and SQL refusals turned into readable CLI errors."""

from __future__ import annotations

import argparse
import uuid

import psycopg

from contentforge.errors import ContentforgeError

#: SQLSTATEs that mean the caller asked for something wrong (bad value, no such row, not allowed,
#: a duplicate or a violated check): exit 2; any other database refusal exits 1.
USAGE_SQLSTATES = ("22023", "PT404", "42501", "23505", "23514")


def uuid_arg(text: str) -> uuid.UUID:
    """argparse type: a UUID, or a usage error naming the text."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


def db_error(exc: psycopg.Error) -> ContentforgeError:
    """A refusal of one of our SQL functions, as a CLI error with its primary message."""
    message = (exc.diag.message_primary if exc.diag and exc.diag.message_primary else str(exc)).strip()
    err = ContentforgeError(message)
    err.exit_code = 2 if exc.sqlstate in USAGE_SQLSTATES else 1
    return err
