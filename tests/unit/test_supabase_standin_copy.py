"""The repository's copy of the Supabase stand-in matches the team's shared one."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1] / "supabase"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "supabase"


@pytest.mark.parametrize("name", ["roles.sql", "standin.sql"])
def test_copy_matches_shared(name: str) -> None:
    """tests/supabase/<file> is byte-for-byte ../shared/supabase/<file> (when the shared folder exists)."""
    if not SHARED.is_dir():
        pytest.skip("no ../shared/supabase beside this clone to compare with")
    assert (HERE / name).read_bytes() == (SHARED / name).read_bytes()
