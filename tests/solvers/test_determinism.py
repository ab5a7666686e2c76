"""With random_seed set, two runs of `caffelite train` give the same bits: LMDB data (prefetch thread, random
crops and mirrors), Dropout, gaussian fillers and the solver's snapshots included."""

import subprocess
import sys

import numpy as np

from caffelite.data.datum import array_to_datum
from caffelite.data.db import open_writer

NET = """
name: "determinism"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { crop_size: 6 mirror: true scale: 0.0039 }
        data_param { source: "%(db)s" batch_size: 5 backend: LMDB } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 12 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "drop" type: "Dropout" bottom: "ip1" top: "ip1" dropout_param { dropout_ratio: 0.5 } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def make_database(path):
    rng = np.random.default_rng(0)
    writer = open_writer(path)
    for index in range(23):
        image = rng.integers(0, 256, size=(2, 8, 8), dtype=np.uint8)
        writer.put(f"{index:08d}".encode(), array_to_datum(image, label=index % 3).SerializeToString())
    writer.close()


def train(folder, db, seed):
    folder.mkdir()
    (folder / "net.prototxt").write_text(NET % {"db": db})
    (folder / "solver.prototxt").write_text(
        f'net: "{folder}/net.prototxt" base_lr: 0.05 momentum: 0.9 lr_policy: "fixed" max_iter: 30 '
        f'snapshot_prefix: "{folder}/run" random_seed: {seed} display: 10')
    result = subprocess.run([sys.executable, "-m", "caffelite_tools.main", "train", "--solver",
                             str(folder / "solver.prototxt")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return (folder / "run_iter_30.caffemodel").read_bytes(), (folder / "run_iter_30.solverstate").read_bytes()


def test_the_same_seed_gives_the_same_bits_and_another_seed_does_not(tmp_path):
    db = tmp_path / "db"
    make_database(db)
    first = train(tmp_path / "a", db, seed=5)
    second = train(tmp_path / "b", db, seed=5)
    other = train(tmp_path / "c", db, seed=6)
    assert first[0] == second[0]
    # The states name their own weights file; apart from that path they are equal too.
    assert first[1].replace(b"/a/", b"/b/") == second[1]
    assert first[0] != other[0]
