"""LeNet on MNIST, written imperatively with caffelite.autograd: the layers of lenet_train_test.prototxt called
one after another on Tensors, trained by the settings of lenet_solver.prototxt (read from it).

    python models/lenet/lenet_autograd.py [--iterations 10000] [--test-every 500] [--seed 1]

Reads models/lenet/mnist/*.gz directly (no database needed). Prints the loss every 100 iterations and the test
accuracy on all 10,000 test images at the end (and every --test-every iterations).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from caffelite import autograd as ag
from caffelite.data.mnist import read_idx_images, read_idx_labels
from caffelite.io.prototxt import read_solver_text
from caffelite.proto import caffe_pb2
from caffelite.rng import set_random_seed
from caffelite.solvers.lr_policies import learning_rate

HERE = Path(__file__).resolve().parent
MNIST = HERE / "mnist"
SOLVER = HERE / "lenet_solver.prototxt"
SCALE = 0.00390625  # lenet_train_test.prototxt's transform_param
BATCH = 64
MAX = caffe_pb2.PoolingParameter.MAX


class LeNet:
    """conv(20, 5) - max pool 2 - conv(50, 5) - max pool 2 - ip(500) - ReLU - ip(10), as lenet_train_test.prototxt."""

    def __init__(self):
        xavier, constant = dict(type="xavier"), dict(type="constant")
        decay = [dict(lr_mult=1), dict(lr_mult=2)]  # biases learn twice as fast, as in the prototxt; SGD reads it
        self.layers = [
            ag.layer("Convolution", num_output=20, kernel_size=5, stride=1, weight_filler=xavier,
                     bias_filler=constant, param=decay),
            ag.layer("Pooling", pool=MAX, kernel_size=2, stride=2),
            ag.layer("Convolution", num_output=50, kernel_size=5, stride=1, weight_filler=xavier,
                     bias_filler=constant, param=decay),
            ag.layer("Pooling", pool=MAX, kernel_size=2, stride=2),
            ag.layer("InnerProduct", num_output=500, weight_filler=xavier, bias_filler=constant, param=decay),
            ag.layer("ReLU"),
            ag.layer("InnerProduct", num_output=10, weight_filler=xavier, bias_filler=constant, param=decay),
        ]
        self.loss = ag.layer("SoftmaxWithLoss")

    @property
    def params(self):
        return ag.parameters(*self.layers)

    def scores(self, images):
        x = ag.Tensor(images)
        for layer in self.layers:
            x = layer(x)
        return x

    def __call__(self, images, labels):
        return self.loss(self.scores(images), ag.Tensor(labels))


def accuracy(net, images, labels, batch=500):
    correct = 0
    with ag.no_grad():
        for start in range(0, len(images), batch):
            scores = net.scores(images[start:start + batch]).numpy()
            correct += int((scores.argmax(axis=1) == labels[start:start + batch]).sum())
    return correct / len(images)


def load(kind):
    images = read_idx_images(MNIST / f"{kind}-images-idx3-ubyte.gz").astype(np.float32)[:, None] * SCALE
    labels = read_idx_labels(MNIST / f"{kind}-labels-idx1-ubyte.gz").astype(np.float32)
    return images, labels


def train(iterations, test_every=0, seed=1, log=print):
    """Train for `iterations`; returns (net, final test accuracy)."""
    set_random_seed(seed)
    solver = read_solver_text(SOLVER)
    train_images, train_labels = load("train")
    test_images, test_labels = load("t10k")
    net = LeNet()
    net(train_images[:BATCH], train_labels[:BATCH])  # sets the layers up, so their params exist
    optimizer = ag.SGD(net.params, lr=solver.base_lr, momentum=solver.momentum, weight_decay=solver.weight_decay)
    step = 0
    for iteration in range(iterations):
        start = (iteration * BATCH) % len(train_images)  # the Data layer's order: sequential, wrapping around
        batch = np.arange(start, start + BATCH) % len(train_images)
        optimizer.zero_grad()
        loss = net(train_images[batch], train_labels[batch])
        loss.backward()
        rate, step = learning_rate(solver, iteration, step)
        optimizer.lr = rate
        optimizer.step()
        if iteration % 100 == 0:
            log(f"Iteration {iteration}, loss = {loss.item():.6g}, lr = {rate:.6g}")
        if test_every and iteration and iteration % test_every == 0:
            log(f"Iteration {iteration}, test accuracy = {accuracy(net, test_images, test_labels):.4f}")
    final = accuracy(net, test_images, test_labels)
    log(f"Iteration {iterations}, test accuracy = {final:.4f}")
    return net, final


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=10000)
    parser.add_argument("--test-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    train(args.iterations, args.test_every, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
