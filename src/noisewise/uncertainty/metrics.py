"""Metrics of predictive uncertainty on labels and probabilities (NumPy arrays,
from any model): calibration, likelihood, Brier score and selective prediction."""

import dataclasses
from typing import Any

import numpy as np

from noisewise._core.validation import check_int

# -log(p) of a true class is taken at max(p, EPSILON): one row given probability 0
# costs -log(1e-12) = 27.6 nats instead of making the mean infinite.
EPSILON = 1e-12

def _probabilities(p):
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim == 1:  # the positive class of a binary problem
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or len(p) == 0 or not np.isfinite(p).all() or p.min() < -1e-6 \
            or p.max() > 1 + 1e-6 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("`p` must be probabilities of shape (rows, classes), each row summing "
                         "to 1 (or (rows,) of a binary problem's positive class). Received: "
                         f"p of shape {p.shape}" + (f", rows summing to {p.sum(axis=1)[:3]}..."
                                                    if p.ndim == 2 and len(p) else ""))
    return np.clip(p, 0.0, 1.0)


def _labels(y, p):
    """``(int codes (rows,), probabilities (rows, classes))``, checked against each other."""
    p = _probabilities(p)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        if y.shape != p.shape or not np.isin(y, (0, 1)).all() or not (y.sum(axis=1) == 1).all():
            raise ValueError(f"`y` as a 2-D array must be one-hot, of the shape of `p` "
                             f"{p.shape}. Received: y of shape {y.shape}")
        y = y.argmax(axis=1)
    y = y.reshape(-1) if y.ndim == 2 else y
    if y.shape != (len(p),) or not np.isin(y, np.arange(p.shape[1])).all():
        raise ValueError(f"`y` must be {len(p)} integer class codes in [0, {p.shape[1] - 1}] "
                         f"(or one-hot rows), one per row of `p`. Received: y of shape "
                         f"{y.shape}, values {np.unique(y)[:5]}")
    return y.astype(np.int64), p


def _check_bins(bins):
    return check_int("bins", bins, low=1)


@dataclasses.dataclass(frozen=True)
class Reliability:
    """Per-bin calibration (:func:`reliability`): what a reliability diagram plots.

    Attributes:
        edges: (bins + 1,) bin edges on the confidence axis, 0 to 1.
        confidence: (bins,) mean confidence of the rows in each bin (NaN if empty).
        accuracy: (bins,) accuracy of those rows (NaN if empty).
        count: (bins,) number of rows in each bin.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray


def reliability(y: Any, p: Any, bins: int = 15) -> Reliability:
    """Rows binned by confidence (the top probability) into ``bins`` equal-width
    bins ``(lo, hi]`` (the first also holds 0), with each bin's mean confidence
    and accuracy (Guo et al. 2017, "On Calibration of Modern Neural Networks").

    Args:
        y: Labels: (rows,) integer codes or (rows, classes) one-hot.
        p: Probabilities (rows, classes), or (rows,) of a binary positive class.
        bins: Number of bins, an integer >= 1.
    """
    y, p = _labels(y, p)
    edges = np.linspace(0.0, 1.0, _check_bins(bins) + 1)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    index = np.digitize(confidence, edges[1:-1], right=True)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, confidence, minlength=bins) / count
        acc = np.bincount(index, correct, minlength=bins) / count
    return Reliability(edges=edges, confidence=conf, accuracy=acc, count=count)


def expected_calibration_error(y: Any, p: Any, bins: int = 15) -> float:
    """ECE: ``sum over bins of (rows in bin / rows) * |accuracy - confidence|``.

    Equal-width confidence bins as in :func:`reliability`; 0 for a perfectly
    calibrated prediction, at most 1.

    Example:
        >>> from noisewise.uncertainty import expected_calibration_error
        >>> round(expected_calibration_error([1], [[0.1, 0.9]]), 4)  # right at 0.9: |1 - 0.9|
        0.1
    """
    table = reliability(y, p, bins)
    full = table.count > 0
    weights = table.count[full] / table.count.sum()
    return float(np.sum(weights * np.abs(table.accuracy[full] - table.confidence[full])))


def negative_log_likelihood(y: Any, p: Any) -> float:
    """Mean over rows of ``-log p[true class]`` (nats), the probability taken at
    least :data:`EPSILON` (1e-12), so one impossible row costs 27.6, not infinity.

    Example:
        >>> from noisewise.uncertainty import negative_log_likelihood
        >>> round(negative_log_likelihood([0, 1], [[0.5, 0.5], [0.5, 0.5]]), 4)  # log 2
        0.6931
    """
    y, p = _labels(y, p)
    return float(np.mean(-np.log(np.maximum(p[np.arange(len(y)), y], EPSILON))))


def brier_score(y: Any, p: Any) -> float:
    """Mean over rows of ``sum over classes of (p_k - 1[k = y])**2`` (Brier 1950).

    The multi-class convention, in [0, 2]: for a binary problem it is twice
    scikit-learn's ``brier_score_loss`` (which scores the positive class only;
    ``scale_by_half=False`` gives this one).

    Example:
        >>> from noisewise.uncertainty import brier_score
        >>> brier_score([0], [[0.75, 0.25]])  # 0.25**2 + 0.25**2
        0.125
    """
    y, p = _labels(y, p)
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def accuracy_coverage(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """Selective prediction: accuracy on the ``k`` most confident rows, for every ``k``.

    Rows are ranked by confidence (top probability), most confident first.
    Rows of equal confidence have no order, so at a coverage that splits them
    the accuracy is its expectation over their orders (their errors spread
    evenly), which makes the curve independent of how ties happen to be sorted.

    Returns:
        ``(coverage, accuracy)``: ``coverage[k - 1] = k / rows`` and the accuracy
        of the ``k`` most confident rows, for ``k = 1 .. rows``.
    """
    y, p = _labels(y, p)
    confidence = p.max(axis=1)
    wrong = (p.argmax(axis=1) != y).astype(np.float64)
    order = np.argsort(-confidence, kind="stable")
    confidence, wrong = confidence[order], wrong[order]
    rows = len(y)
    # Each tie group's errors, spread evenly over its positions.
    starts = np.flatnonzero(np.r_[True, np.diff(confidence) != 0])
    sizes = np.diff(np.r_[starts, rows])
    group_errors = np.add.reduceat(wrong, starts)
    spread = np.repeat(group_errors / sizes, sizes)
    k = np.arange(1, rows + 1)
    return k / rows, 1.0 - np.cumsum(spread) / k


def aurc(y: Any, p: Any) -> float:
    """Area under the risk-coverage curve: the mean, over ``k = 1 .. rows``, of the
    error rate of the ``k`` most confident rows (Geifman et al. 2019, "Bias-Reduced
    Uncertainty Estimation for Deep Neural Classifiers"). Lower is better; a model
    whose errors are all less confident than its correct rows gets the least its
    error rate allows. Ties as in :func:`accuracy_coverage`.

    Example:
        >>> from noisewise.uncertainty import aurc
        >>> aurc([0, 0, 0, 0], [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.4, 0.6]])  # 1/4 at k=4
        0.0625
    """
    _, accuracy = accuracy_coverage(y, p)
    return float(np.mean(1.0 - accuracy))
