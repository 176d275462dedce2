"""Noisy training labels: ``[data] label_noise = { kind = "symmetric", rate = 0.4 }``.

Each training label is corrupted independently with probability ``rate``:

- ``symmetric``: to one of the other ``k - 1`` classes, chosen uniformly.
- ``pairflip``: class ``c`` to ``(c + 1) mod k``.
- ``asymmetric``: the class-dependent map of Patrini et al. (2017) for
  handwritten digits, 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1; the other classes keep
  their labels, so the share of labels changed is about half of ``rate``. It
  is defined for the built-in ``digits`` only (the spec refuses it elsewhere).

Only the training rows are corrupted, after the validation split is held out
(:mod:`~noisewise.study.splits`), so validation and test labels stay clean and
measure accuracy on the true classes. The draw is
``numpy.random.default_rng(derive_seed(study.seed, "label_noise"))``: one
corruption per study, shared by every arm and replica, so the comparisons
between arms are paired on the same noisy labels. Replicas then vary the
initial weights and data order, not the corruption; a study with another
``study.seed`` draws another corruption.

Example:
    >>> import numpy as np
    >>> y = np.repeat(np.arange(4), 250)
    >>> noisy, counts = corrupt(y, "pairflip", 0.2, num_classes=4, seed=0)
    >>> bool(((noisy == y) | (noisy == (y + 1) % 4)).all()), int(counts.sum())
    (True, 1000)
"""

import dataclasses

import numpy as np

from noisewise.random import derive_seed

KINDS = ("symmetric", "asymmetric", "pairflip")
# Patrini et al. (2017), "Making Deep Neural Networks Robust to Label Noise: a
# Loss Correction Approach", their MNIST setting.
DIGITS_MAP = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
ASYMMETRIC_DATA = ("digits",)


def check_label_noise(entry):
    """``{"kind", "rate"}`` of a ``label_noise`` table, or raise ValueError naming the key."""
    if not isinstance(entry, dict):
        raise ValueError("`label_noise` must be a table { kind = \"symmetric\", rate = 0.4 }. "
                         f"Received: label_noise={entry!r}")
    extra = sorted(set(entry) - {"kind", "rate"}, key=str)
    if extra:
        raise ValueError(f"`{extra[0]}`: unknown key of label_noise; allowed: kind, rate")
    kind, rate = entry.get("kind"), entry.get("rate")
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {', '.join(map(repr, KINDS))}. "
                         f"Received: kind={kind!r}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError("`rate` must be a number in [0, 1) (the probability that a "
                         f"training label is changed). Received: rate={rate!r}")
    return {"kind": kind, "rate": float(rate)}


def transition_matrix(kind, rate, num_classes):
    """The requested ``T[i, j] = P(noisy label j | clean label i)``, shape (k, k)."""
    k = num_classes
    t = np.eye(k) * (1.0 - rate)
    if kind == "symmetric":
        t += (1.0 - np.eye(k)) * rate / (k - 1)
    elif kind == "pairflip":
        t[np.arange(k), (np.arange(k) + 1) % k] += rate
    else:
        for c in range(k):
            if c in DIGITS_MAP and DIGITS_MAP[c] < k:
                t[c, DIGITS_MAP[c]] += rate
            else:
                t[c, c] = 1.0
    return t


def corrupt(y, kind, rate, num_classes, seed):
    """``(noisy labels, counts)``: ``y`` (int codes 0..k-1) with each label changed
    with probability ``rate`` as ``kind`` says, and ``counts[i, j]``, how many
    rows of clean class ``i`` now carry label ``j``.

    The draw is ``default_rng(derive_seed(seed, "label_noise"))``: one uniform
    per row says whether it flips, one more which class a symmetric flip takes.
    """
    y = np.asarray(y)
    k = int(num_classes)
    if k < 2:
        raise ValueError(f"label noise needs at least 2 classes. Received: num_classes={k}")
    rng = np.random.default_rng(derive_seed(seed, "label_noise"))
    flip = rng.random(len(y)) < rate
    offset = rng.integers(1, k, size=len(y))  # drawn for every row: the draw never depends on y
    if kind == "symmetric":
        target = (y + offset) % k  # uniform over the k - 1 other classes
    elif kind == "pairflip":
        target = (y + 1) % k
    else:
        lookup = np.arange(k)
        for c, d in DIGITS_MAP.items():
            if c < k and d < k:
                lookup[c] = d
        target = lookup[y]
    noisy = np.where(flip, target, y).astype(y.dtype)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y, noisy), 1)
    return noisy, counts


def realised_matrix(counts):
    """Row-normalised ``counts``: the realised transition matrix (rows of absent classes 0)."""
    totals = counts.sum(axis=1, keepdims=True)
    return counts / np.maximum(totals, 1)


def apply_label_noise(data, entry, seed):
    """``data`` with its training labels corrupted by ``entry`` (``{"kind", "rate"}``),
    drawn from ``seed`` (the study's); a note in ``data.notes`` states what changed."""
    entry = check_label_noise(entry)
    kind, rate = entry["kind"], entry["rate"]
    if data.task != "classification":
        raise ValueError("`label_noise` applies to classification; the data's task is "
                         f"{data.task}")
    noisy, counts = corrupt(data.y_train, kind, rate, data.num_classes, seed)
    changed = int(counts.sum() - np.trace(counts))
    n = int(counts.sum())
    flips = 1.0 - np.diag(realised_matrix(counts))
    affected = np.diag(transition_matrix(kind, rate, data.num_classes)) < 1
    spread = (f"; per class {flips[affected].min():.3f} to {flips[affected].max():.3f}"
              if affected.any() and rate > 0 else "")
    note = (f"{data.name}: label noise ({kind}, rate {rate:g}, study seed {seed}): {changed} "
            f"of {n} training labels changed (realised rate {changed / max(n, 1):.3f}{spread}); "
            "validation and test labels are clean")
    return dataclasses.replace(data, y_train=noisy, notes=(*data.notes, note))
