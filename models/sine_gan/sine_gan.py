"""A GAN that learns to draw sine waves, trained through caffelite's Python API (pycaffe style).

    python models/sine_gan/sine_gan.py [--iterations 6000] [--seed 1] [--plot models/sine_gan/sine_gan.png]

Real signals: 10 samples of A sin(x + phase) on x = linspace(0, 2 pi, 10), A uniform in [0.6, 1], phase uniform.
Generator: z (1 value, N(0, 1)) -> 10 ReLU -> 10 ReLU -> 10 TanH. Discriminator: 10 -> 10 LeakyReLU (ReLU with
negative_slope 0.2) -> 10 LeakyReLU -> 1 logit, scored by SigmoidCrossEntropyLoss (the sigmoid and the binary
cross-entropy in one numerically safe layer).

Two nets, two Adam solvers: the discriminator net learns real (label 1) against generated (label 0) signals; the
generator net is the generator followed by a copy of the discriminator whose params have lr_mult 0, so its loss
(generated signals called real) sends gradients back through the discriminator into the generator without
changing the discriminator. Before each generator step the discriminator's current weights are copied into it.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from caffelite.phase import TRAIN
from caffelite.proto import caffe_pb2
from caffelite.rng import set_random_seed
from caffelite.solvers.solver import SOLVERS

HERE = Path(__file__).resolve().parent
SAMPLES, BATCH = 10, 64
GRID = np.linspace(0.0, 2.0 * np.pi, SAMPLES)
AMPLITUDE = (0.6, 1.0)

GENERATOR = """
layer { name: "g1" type: "InnerProduct" bottom: "z" top: "g1" inner_product_param { num_output: 10
        weight_filler { type: "xavier" } } }
layer { name: "g1_relu" type: "ReLU" bottom: "g1" top: "g1" }
layer { name: "g2" type: "InnerProduct" bottom: "g1" top: "g2" inner_product_param { num_output: 10
        weight_filler { type: "xavier" } } }
layer { name: "g2_relu" type: "ReLU" bottom: "g2" top: "g2" }
layer { name: "g3" type: "InnerProduct" bottom: "g2" top: "g3" inner_product_param { num_output: 10
        weight_filler { type: "xavier" } } }
layer { name: "fake" type: "TanH" bottom: "g3" top: "signal" }
"""
DISCRIMINATOR = """
layer { name: "d1" type: "InnerProduct" bottom: "signal" top: "d1" %(frozen)s inner_product_param { num_output: 10
        weight_filler { type: "xavier" } } }
layer { name: "d1_leaky" type: "ReLU" bottom: "d1" top: "d1" relu_param { negative_slope: 0.2 } }
layer { name: "d2" type: "InnerProduct" bottom: "d1" top: "d2" %(frozen)s inner_product_param { num_output: 10
        weight_filler { type: "xavier" } } }
layer { name: "d2_leaky" type: "ReLU" bottom: "d2" top: "d2" relu_param { negative_slope: 0.2 } }
layer { name: "d3" type: "InnerProduct" bottom: "d2" top: "logit" %(frozen)s inner_product_param { num_output: 1
        weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "logit" bottom: "label" top: "loss" }
"""
FROZEN = "param { lr_mult: 0 } param { lr_mult: 0 }"


def inputs(*blobs):
    tops = " ".join(f'top: "{name}"' for name, _ in blobs)
    shapes = " ".join("shape { " + " ".join(f"dim: {d}" for d in shape) + " }" for _, shape in blobs)
    return f'layer {{ name: "input" type: "Input" {tops} input_param {{ {shapes} }} }}'


def solver(net_text, lr):
    param = caffe_pb2.SolverParameter(type="Adam", base_lr=lr, momentum=0.5, momentum2=0.999, lr_policy="fixed",
                                      display=0, snapshot_after_train=False)
    text_format.Parse(net_text, param.net_param)
    param.net_param.state.phase = TRAIN
    return SOLVERS.get("Adam")(param, source="sine_gan")


def real_signals(rng, count):
    amplitude = rng.uniform(*AMPLITUDE, size=(count, 1))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(count, 1))
    return (amplitude * np.sin(GRID + phase)).astype(np.float32)


class SineGAN:
    def __init__(self, seed=1):
        set_random_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.discriminator = solver(inputs(("signal", (2 * BATCH, SAMPLES)), ("label", (2 * BATCH, 1)))
                                    + DISCRIMINATOR % {"frozen": ""}, lr=0.002)
        self.generator = solver(inputs(("z", (BATCH, 1)), ("label", (BATCH, 1))) + GENERATOR
                                + DISCRIMINATOR % {"frozen": FROZEN}, lr=0.002)
        self.generator.net.blobs["label"].data[...] = 1  # the generator wants its signals called real
        labels = np.concatenate([np.ones(BATCH), np.zeros(BATCH)]).reshape(-1, 1)
        self.discriminator.net.blobs["label"].data[...] = labels

    def generate(self, count=BATCH):
        net = self.generator.net
        net.blobs["z"].data[...] = self.rng.standard_normal((BATCH, 1))
        net.forward(end="fake")
        return net.blobs["signal"].data[:count].copy()

    def step(self):
        """One discriminator step on real and generated signals, then one generator step; the two losses."""
        d_net = self.discriminator.net
        d_net.blobs["signal"].data[:BATCH] = real_signals(self.rng, BATCH)
        d_net.blobs["signal"].data[BATCH:] = self.generate()
        self.discriminator.step(1)
        d_loss = float(d_net.blobs["loss"].data)
        for name in ("d1", "d2", "d3"):  # the generator's frozen copy follows the discriminator
            for mine, theirs in zip(self.generator.net.params[name], d_net.params[name]):
                mine.data[...] = theirs.data
        self.generator.net.blobs["z"].data[...] = self.rng.standard_normal((BATCH, 1))
        self.generator.step(1)
        return d_loss, float(self.generator.net.blobs["loss"].data)


def fit_sine(signal):
    """Least-squares A sin(x + phase) through a signal: (amplitude, relative residual)."""
    basis = np.stack([np.sin(GRID), np.cos(GRID)], axis=1)  # A sin(x + p) = A cos p sin x + A sin p cos x
    coefficients, *_ = np.linalg.lstsq(basis, signal, rcond=None)
    residual = np.linalg.norm(basis @ coefficients - signal) / max(np.linalg.norm(signal), 1e-12)
    return float(np.hypot(*coefficients)), float(residual)


def train(iterations, seed=1, log=print):
    gan = SineGAN(seed)
    for iteration in range(1, iterations + 1):
        d_loss, g_loss = gan.step()
        if iteration % 500 == 0:
            log(f"iteration {iteration}: discriminator loss {d_loss:.4f}, generator loss {g_loss:.4f}")
    return gan


def plot(gan, out):
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install -e '.[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for signal in real_signals(np.random.default_rng(0), 8):
        left.plot(GRID, signal, marker=".")
    for signal in gan.generate(8):
        right.plot(GRID, signal, marker=".")
    left.set_title("real: A sin(x + phase)")
    right.set_title("generated")
    figure.savefig(out, dpi=100)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plot", type=Path, default=HERE / "sine_gan.png")
    args = parser.parse_args(argv)
    gan = train(args.iterations, args.seed)
    fits = [fit_sine(signal) for signal in gan.generate()]
    print(f"generated signals: median relative residual of a sine fit {np.median([r for _, r in fits]):.3f}, "
          f"amplitudes {min(a for a, _ in fits):.2f} to {max(a for a, _ in fits):.2f}")
    plot(gan, args.plot)
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
