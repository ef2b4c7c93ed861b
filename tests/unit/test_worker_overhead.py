"""Per-job work the worker skips when nobody reads it (issue 16): the summary line below the
configured level, and the JSON round trip of a result that is plain already."""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import uuid

import pytest
import structlog

from contentforge import logging as cf_logging
from workers.actors import _json_safe


@pytest.fixture
def restore_logging():
    """Put structlog's and the standard library's configuration back after the test."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level, configured = root.handlers[:], root.level, cf_logging._configured
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)
    cf_logging._configured = configured


def test_enabled_follows_the_configured_level(restore_logging) -> None:
    """After configure_logging at WARNING an INFO line of a worker logger is not enabled, a WARNING line is."""
    cf_logging.configure_logging("json", "WARNING")
    assert not cf_logging.enabled("workers.job", logging.INFO)
    assert cf_logging.enabled("workers.job", logging.WARNING)
    cf_logging.configure_logging("json", "INFO")
    assert cf_logging.enabled("workers.job", logging.INFO)


def test_enabled_before_logging_is_configured(restore_logging) -> None:
    """Before configure_logging every level counts as enabled (structlog's default writes every line)."""
    cf_logging._configured = False
    assert cf_logging.enabled("workers.job", logging.DEBUG)


@pytest.mark.parametrize("value", [
    {"slept_seconds": 0.0, "tag": "a", "n": 3, "ok": True, "none": None},
    {"when": dt.datetime(2026, 1, 2, tzinfo=dt.UTC), "id": uuid.UUID(int=1), "d": decimal.Decimal("1.5")},
    {"nested": {"a": [1, 2, {"b": dt.date(2026, 1, 2)}]}, 1: "int key"},
    {},
])
def test_json_safe_gives_what_a_json_round_trip_gives(value: dict) -> None:
    """A job result comes out as a JSON round trip would give it, whether or not it is plain already."""
    import json

    assert _json_safe(value) == json.loads(json.dumps(value, default=str))
