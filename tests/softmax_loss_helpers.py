"""What the SoftmaxWithLoss and InfogainLoss tests share: random scores and labels, and the reference loop."""

import numpy as np


def random_scores_and_labels(rng, shape, axis, ignore):
    """Scores ~ N(0, 2) and one class label per position off `axis`; every third label is `ignore` if given."""
    scores = rng.normal(0, 2, shape)
    label_shape = tuple(d for i, d in enumerate(shape) if i != axis)
    labels = rng.integers(0, shape[axis], label_shape).astype(np.float64)
    if ignore is not None:
        labels.flat[::3] = ignore
    return scores, labels


def reference_softmax_loss(scores, labels, axis, ignore, mode, position_loss):
    """Walk every (outer, inner) position; softmax over the class axis by hand; sum position_loss(p, label) over
    the positions not ignored and divide by the normalizer of `mode`."""
    moved = np.moveaxis(scores, axis, -1)
    total, valid = 0.0, 0
    for index in np.ndindex(moved.shape[:-1]):
        label = int(labels[index])
        if label == ignore:
            continue
        row = moved[index]
        prob = np.exp(row - row.max()) / np.sum(np.exp(row - row.max()))
        total += position_loss(prob, label)
        valid += 1
    outer = int(np.prod(scores.shape[:axis]))
    normalizer = {"FULL": labels.size, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return total / max(1, normalizer)
