"""Schedules from settings: "every <N>s|m|h" or a five-field crontab, always in UTC."""

from __future__ import annotations

import datetime as dt
import re

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from contentforge.errors import ConfigurationError

_EVERY = re.compile(r"^every\s+(\d+)\s*([smh])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours"}


def parse(spec: str) -> BaseTrigger:
    """A trigger for ``spec``; raises ConfigurationError with the accepted forms on a bad value."""
    text = spec.strip().lower()
    m = _EVERY.match(text)
    if m:
        n = int(m.group(1))
        if n <= 0:
            raise ConfigurationError(f"schedule {spec!r}: the interval must be positive")
        return IntervalTrigger(**{_UNITS[m.group(2)]: n}, timezone=dt.UTC)
    try:
        return CronTrigger.from_crontab(text, timezone=dt.UTC)
    except ValueError as exc:
        raise ConfigurationError(
            f"schedule {spec!r} is neither 'every <N>s|m|h' nor a five-field crontab: {exc}"
        ) from exc


def is_cron(trigger: BaseTrigger) -> bool:
    return isinstance(trigger, CronTrigger)


#: Windows tried, smallest first, when looking back for the latest due time: a minutely cron is
#: found in the first, a monthly one in the third; nothing older than a year is caught up.
_LOOKBACK = (dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(days=32), dt.timedelta(days=366))


def latest_due(trigger: BaseTrigger, after: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """The latest fire time of a cron trigger in (after, now], or None when none fell due."""
    for window in _LOOKBACK:
        start = now - window if after is None else max(after, now - window)
        t = trigger.get_next_fire_time(None, start)
        if t is not None and after is not None and t <= after:
            t = trigger.get_next_fire_time(t, t + dt.timedelta(microseconds=1))
        if t is None or t > now:
            if after is not None and start == after:
                return None  # the whole (after, now] was searched
            continue
        due = t
        while True:
            t = trigger.get_next_fire_time(due, due + dt.timedelta(microseconds=1))
            if t is None or t > now:
                return due
            due = t
    return None
