"""Where ../shared lives, and a skip for tests that need it (a user's clone has no shared/; CI always has it)."""

from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
CONFORMANCE = SHARED / "conformance"


def shared_path(*parts):
    """The path under ../shared, or skip the calling test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the team's shared/ folder, present in CI, absent in a user's clone)")
    return path
