"""The three-class spiral data set (100 points per class, as in Stanford's CS231n notes), written for HDF5Data.

    python models/spiral/make_spiral.py [--out-dir models/spiral] [--seed 0]

Class j's points lie on an arm: radius r = linspace(0, 1), angle t = linspace(4j, 4(j + 1)) + N(0, 0.2) noise,
x = (r sin t, r cos t). Writes spiral.h5 (`data`: 300 x 2 float32, `label`: 300 float32) and spiral_list.txt,
the HDF5Data source listing it.
"""

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
POINTS, CLASSES = 100, 3


def spiral(seed=0):
    """(points, labels): 300 x 2 float32 and 300 float32 class indices."""
    rng = np.random.default_rng(seed)
    points, labels = [], []
    for j in range(CLASSES):
        radius = np.linspace(0.0, 1.0, POINTS)
        angle = np.linspace(4.0 * j, 4.0 * (j + 1), POINTS) + rng.normal(0.0, 0.2, POINTS)
        points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(POINTS, j))
    return np.concatenate(points).astype(np.float32), np.concatenate(labels).astype(np.float32)


def write(out_dir, seed=0):
    out_dir = Path(out_dir)
    points, labels = spiral(seed)
    with h5py.File(out_dir / "spiral.h5", "w") as handle:
        handle["data"] = points
        handle["label"] = labels
    (out_dir / "spiral_list.txt").write_text(f"{(out_dir / 'spiral.h5').resolve()}\n")
    return out_dir / "spiral_list.txt"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=HERE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write(args.out_dir, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
