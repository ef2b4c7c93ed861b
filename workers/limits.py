"""The worker's media limits, built from settings.

Settings hold the limits as plain numbers so that reading them loads no media code; the worker turns
them into the :class:`jobs.limits.MediaLimits` every job function takes.
"""

from __future__ import annotations

from dataclasses import fields

from contentforge.settings import Settings
from jobs.limits import MediaLimits


def media_limits(settings: Settings) -> MediaLimits:
    """The MediaLimits named by ``settings`` (every field of MediaLimits is a setting of the same name)."""
    return MediaLimits(**{f.name: getattr(settings, f.name) for f in fields(MediaLimits)})
