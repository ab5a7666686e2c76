"""A real `caffelite train` log for the log-tool tests: the tiny model of cli_helpers, trained 20 iterations."""

import subprocess
import sys

from cli_helpers import tiny_net, write_model

# display every 5 iterations, test every 10 (and at the end), lr halved at iteration 10.
SOLVER = ('test_iter: 2 test_interval: 10 base_lr: 0.5 lr_policy: "step" gamma: 0.5 stepsize: 10 '
          'display: 5 max_iter: 20 snapshot: 0 snapshot_prefix: "{folder}/tiny" random_seed: 1')


def write_training_log(folder, name="caffe.INFO"):
    """Train the tiny model in `folder`, its glog output (stderr) going to folder/name; that path."""
    solver = write_model(folder, tiny_net(), SOLVER.format(folder=folder))
    log_path = folder / name
    with open(log_path, "w") as log_file:
        result = subprocess.run(
            [sys.executable, "-m", "caffelite_tools.main", "train", "-solver", str(solver), "-progress", "off"],
            stdout=subprocess.DEVNULL, stderr=log_file, timeout=120,
        )
    assert result.returncode == 0, log_path.read_text()
    return log_path
