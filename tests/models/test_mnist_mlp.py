"""models/mnist_mlp: two epochs of the 784-400-100-10 MLP with Adam already score 96% on MNIST's test set (the
20-epoch run from the readme command is recorded in models/mnist_mlp/readme.md)."""

from pathlib import Path

from caffelite.data.mnist import convert_mnist
from caffelite.io.prototxt import read_net_text, read_solver_text
from caffelite.solvers.solver import SOLVERS

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT / "models" / "lenet" / "mnist"


def test_two_epochs_score_ninety_six_percent(tmp_path):
    for split, name in (("train", "mnist_train_lmdb"), ("t10k", "mnist_test_lmdb")):
        convert_mnist(MNIST / f"{split}-images-idx3-ubyte.gz", MNIST / f"{split}-labels-idx1-ubyte.gz",
                      tmp_path / name)
    param = read_solver_text(str(ROOT / "models" / "mnist_mlp" / "mnist_mlp_solver.prototxt"))
    net = read_net_text(str(ROOT / param.net))
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.source = str(tmp_path / Path(layer.data_param.source).name)
    param.ClearField("net")
    param.net_param.CopyFrom(net)
    assert (param.type, net.layer[0].data_param.batch_size) == ("Adam", 128)
    assert abs(param.base_lr - 0.001) < 1e-9
    param.max_iter, param.test_interval, param.snapshot, param.display = 938, 938, 0, 0
    param.snapshot_prefix = str(tmp_path / "mlp")
    solver = SOLVERS.get(param.type)(param)
    solver.solve()
    assert solver.iter == 938
    scores = solver.test(0)  # all 10,000 test images (test_iter 100 x batch 100)
    assert scores["accuracy"] >= 0.96, scores
