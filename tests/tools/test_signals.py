"""SIGHUP and SIGINT during `caffelite train` follow sighup_effect / sigint_effect (Caffe's defaults: snapshot, stop)."""

import re
import signal
import subprocess
import sys

import pytest

from cli_helpers import send_signals, tiny_net, write_model


def start_training(tmp_path, *flags):
    solver = write_model(
        tmp_path, tiny_net(),
        f'base_lr: 0.1 lr_policy: "fixed" display: 10 max_iter: 100000000 snapshot_prefix: "{tmp_path}/tiny" '
        "random_seed: 1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "caffelite_tools.main", "train", "--solver", str(solver), *flags],
        stderr=subprocess.PIPE, text=True,
    )


def snapshot_iterations(log):
    return [int(n) for n in re.findall(r"Snapshotting solver state to binary proto file .*_iter_(\d+)\.solverstate",
                                       log)]


def test_sighup_snapshots_and_training_goes_on(tmp_path):
    log = send_signals(start_training(tmp_path), [(20, signal.SIGHUP), (60, signal.SIGINT)])
    taken = snapshot_iterations(log)
    assert len(taken) == 2, log  # the SIGHUP snapshot, then the final one after SIGINT
    assert 20 < taken[0] < 60 < taken[1]
    assert (tmp_path / f"tiny_iter_{taken[0]}.caffemodel").exists()
    assert "Optimization stopped early." in log


@pytest.mark.parametrize("flags", [["--sighup_effect=none"], ["-sighup_effect", "none"]])
def test_sighup_none_is_ignored(tmp_path, flags):
    log = send_signals(start_training(tmp_path, *flags), [(20, signal.SIGHUP), (60, signal.SIGINT)])
    assert len(snapshot_iterations(log)) == 1  # only the final snapshot


def test_sigint_snapshot_and_sighup_stop_swap_the_roles(tmp_path):
    process = start_training(tmp_path, "--sigint_effect=snapshot", "--sighup_effect=stop")
    log = send_signals(process, [(20, signal.SIGINT), (60, signal.SIGHUP)])
    taken = snapshot_iterations(log)
    assert len(taken) == 2 and 20 < taken[0] < 60 < taken[1], log
    assert "Optimization stopped early." in log
