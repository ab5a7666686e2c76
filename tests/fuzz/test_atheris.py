"""The atheris script runs every target for a bounded number of inputs without a crash (exit status 0)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz import targets

SCRIPT = Path(__file__).with_name("atheris_targets.py")


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_each_atheris_target_runs_clean(name, tmp_path):
    artifacts, temporary = tmp_path / "artifacts", tmp_path / "tmp"
    artifacts.mkdir()
    temporary.mkdir()
    command = [sys.executable, str(SCRIPT), name, "-runs=500", "-seed=1", f"-artifact_prefix={artifacts}/"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TMPDIR": str(temporary)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 500 runs" in result.stderr
    assert list(artifacts.iterdir()) == []  # no crash input written
    assert list(temporary.iterdir()) == []  # the seed corpus and the targets' files are gone


def test_an_unknown_target_prints_the_usage():
    result = subprocess.run([sys.executable, str(SCRIPT), "nonsense"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Targets:" in result.stderr
