"""Draw the spiral net's decision regions and the training points as a PNG.

    python models/spiral/plot_spiral.py --weights models/spiral/spiral_iter_3000.caffemodel [--out spiral.png]

Needs matplotlib (pip install -e '.[plot]'). Prints the accuracy on the 300 points as well.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from caffelite.net import Net
from caffelite.phase import TEST

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_spiral import spiral  # noqa: E402


def classify(net, points):
    """Class index of each point."""
    net.blobs["data"].reshape(*points.shape)
    net.reshape()
    net.blobs["data"].data[...] = points
    return net.forward()["prob"].argmax(axis=1)


def plot(weights, out, seed=0):
    """Write the PNG; returns the accuracy on the training points."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("plot_spiral.py needs matplotlib: pip install -e '.[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = Net(str(HERE / "spiral_deploy.prototxt"), TEST, weights=str(weights))
    points, labels = spiral(seed)
    accuracy = float(np.mean(classify(net, points) == labels))
    xs, ys = np.meshgrid(np.linspace(-1.1, 1.1, 300), np.linspace(-1.1, 1.1, 300))
    regions = classify(net, np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)).reshape(xs.shape)
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.contourf(xs, ys, regions, levels=[-0.5, 0.5, 1.5, 2.5], cmap="Spectral", alpha=0.6)
    axes.scatter(points[:, 0], points[:, 1], c=labels, cmap="Spectral", s=12, edgecolors="k", linewidths=0.3)
    axes.set_title(f"spiral: training accuracy {accuracy:.1%}")
    axes.set_xlim(-1.1, 1.1)
    axes.set_ylim(-1.1, 1.1)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=HERE / "spiral_iter_3000.caffemodel")
    parser.add_argument("--out", type=Path, default=HERE / "spiral.png")
    args = parser.parse_args(argv)
    print(f"training accuracy {plot(args.weights, args.out):.4f}; decision regions in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
