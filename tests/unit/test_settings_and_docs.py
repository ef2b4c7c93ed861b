"""Settings and the documents that describe them stay in step."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from contentforge.settings import Settings
from jobs.limits import MediaLimits
from workers.job_options import media_limits

REPO = Path(__file__).resolve().parents[2]


def _env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias.choices[0] if alias is not None else f"CONTENTFORGE_{field.upper()}"  # type: ignore[union-attr]


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme_table(field: str) -> None:
    """Each setting has a row in the README's settings table."""
    readme = (REPO / "README.md").read_text()
    assert f"| `{_env_name(field)}` |" in readme


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Service URLs use their conventional names; the rest the CONTENTFORGE_ prefix."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@h/db")
    monkeypatch.setenv("CONTENTFORGE_MAX_IMAGE_PIXELS", "1000")
    s = Settings(_env_file=None)
    assert s.database_url == "postgresql://x@h/db"
    limits = media_limits(s)
    assert limits == MediaLimits(max_image_pixels=1000, ffmpeg_threads=limits.ffmpeg_threads)
    assert limits.ffmpeg_threads >= 1  # the setting's 0 is "auto", resolved by the worker


@pytest.mark.parametrize("limit", [f.name for f in fields(MediaLimits)])
def test_media_limit_settings_default_to_the_job_limits(limit: str) -> None:
    """Every media limit is a setting whose default is the documented default of MediaLimits."""
    assert Settings.model_fields[limit].default == getattr(MediaLimits(), limit)


def test_a_bad_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-numeric lease is a validation error naming the field."""
    monkeypatch.setenv("CONTENTFORGE_LEASE_SECONDS", "soon")
    with pytest.raises(ValueError, match="lease_seconds"):
        Settings(_env_file=None)


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    """The README opens with the demo and test commands, and .ci/run runs the test command."""
    readme = (REPO / "README.md").read_text().splitlines()
    block = readme[readme.index("```sh") + 1:readme.index("```sh") + 3]
    assert block[0].startswith("scripts/demo") and block[1].startswith("scripts/test")
    ci = [line for line in (REPO / ".ci/run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci[-1] == "scripts/test"
