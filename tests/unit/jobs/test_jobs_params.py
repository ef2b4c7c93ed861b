"""The job parameter schemas as checked when a job runs (jobs.params via run_job)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs import JobInput, PermanentJobError, run_job
from jobs.params import MAX_RENDITIONS_PER_JOB, check_params


@pytest.mark.parametrize(("job_type", "params", "words"), [
    ("transcode", {"renditions": [144] * (MAX_RENDITIONS_PER_JOB + 1)}, ["renditions", "MAX_RENDITIONS_PER_JOB"]),
    ("transcode", {"renditions": [True]}, ["renditions", "integer"]),
    ("thumbnail", {"widths": [8]}, ["widths", "between 16 and 4096", "MAX_VARIANT_WIDTH"]),
    ("thumbnail", {"widths": [320.0]}, ["widths", "integer"]),
    ("thumbnail", {"formats": ["gif"]}, ["formats", "webp, avif, jpeg"]),
    ("transcript", {"engine": "openai-whisper"}, ["'engine'", "allowed: language"]),
    ("transcript", {"model": "/etc/passwd"}, ["'model'", "allowed: language"]),
    ("noop", {"sleep_seconds": 61}, ["sleep_seconds", "MAX_NOOP_SLEEP_SECONDS"]),
    ("metadata", {"anything": 1}, ["'anything'", "allowed: source_version"]),
])
def test_params_outside_the_schema_fail_naming_field_and_limit(job_type: str, params: dict[str, Any],
                                                               words: list[str]) -> None:
    """A parameter outside its job type's schema is a PermanentJobError naming the field and the limit."""
    with pytest.raises(PermanentJobError) as info:
        check_params(job_type, params)
    for word in words:
        assert word in str(info.value)


def test_run_job_checks_params_before_the_job_function(tmp_path: Path) -> None:
    """run_job refuses bad parameters before any work, and passes operator parameters through."""
    with pytest.raises(PermanentJobError, match="crash"):
        run_job("noop", JobInput(None, tmp_path, {"crash": "yes"}))
    result = run_job("noop", JobInput(None, tmp_path, {"sleep_seconds": 0, "tag": "x"}))
    assert result.data == {"slept_seconds": 0.0}
