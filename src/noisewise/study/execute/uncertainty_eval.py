"""An arm's ``predict`` table: Monte Carlo prediction of the test split after training.

An arm with ``predict = { samples = 30, mode = "mc" }`` has its trained model
predict the test split twice: once deterministically (every stochastic layer
off, as ``evaluate`` does) and once with :func:`noisewise.uncertainty.predict_mc`
(``samples`` draws). Its final metrics gain, for the deterministic prediction,
``test_ece``, ``test_nll``, ``test_brier`` and ``test_aurc``, and for the Monte
Carlo one ``test_mc_accuracy``, ``test_mc_ece``, ``test_mc_nll``,
``test_mc_brier``, ``test_mc_aurc`` and the mean ``test_mc_entropy`` and
``test_mc_mutual_information`` (nats). The metrics and their conventions are
those of :mod:`noisewise.uncertainty` (ECE with 15 equal-width bins). Only arms
with the key are evaluated, so a study without it records what it did before.

``mode`` says which layers draw: ``"mc"`` every dropout and noise layer,
``"dropout"`` or ``"noise"`` those alone, ``"tta"`` the arm's augmentation at
the input (test-time augmentation). The draws' seed depends on the replica
only, so replica i of every arm is predicted with the same seeds (paired).

Example:
    >>> from noisewise.study.config.sections import PREDICT_MODES
    >>> PREDICT_MODES["mc"]
    ('dropout', 'noise')
"""

import dataclasses

import numpy as np

from noisewise.random import derive_seed
from noisewise.study.config.sections import PREDICT_MODES
from noisewise.uncertainty import (
    aurc,
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    predict_mc,
    reliability,
    stochastic_call,
)

BINS = 15


def _metrics(y, p, prefix):
    return {f"{prefix}ece": expected_calibration_error(y, p, BINS),
            f"{prefix}nll": negative_log_likelihood(y, p),
            f"{prefix}brier": brier_score(y, p), f"{prefix}aurc": aurc(y, p)}


def _bins(y, p):
    """A reliability diagram's sums per bin, to be pooled over runs exactly:
    rows, summed confidence and correct rows (:func:`noisewise.uncertainty.reliability`)."""
    r = reliability(y, p, BINS)
    count = r.count.astype(int)
    return {"count": count.tolist(),
            "confidence": np.nan_to_num(r.confidence * count).round(6).tolist(),
            "correct": np.nan_to_num(r.accuracy * count).round(6).astype(int).tolist()}


@dataclasses.dataclass(frozen=True)
class UncertaintyEvaluation:
    """An arm's ``predict`` evaluation of a trained model.

    Attributes:
        metrics: The ``test_*`` figures (module docstring), final metrics of the run.
        terms: What the report's reliability diagrams draw, stored with the run:
            ``{"bins", "mode", "samples", "deterministic", "mc"}``, the last two
            ``{"count", "confidence", "correct"}`` per bin (sums, so runs pool).
    """

    metrics: dict
    terms: dict


def uncertainty_evaluation(plan, model):
    """The :class:`UncertaintyEvaluation` of a trained model for an arm with
    ``predict``, or None for an arm without it.

    Args:
        plan: The run's :class:`~noisewise.study.execute.RunPlan`.
        model: The trained model.
    """
    predict = getattr(plan.arm, "predict", None)
    if not predict:
        return None
    data = plan.data
    x, y = getattr(data, "x_test", None), getattr(data, "y_test", None)
    if not isinstance(x, np.ndarray) or getattr(data, "task", "classification") != "classification":
        raise ValueError(f"arm {plan.arm.name!r}: `predict` needs a classification task with "
                         "the test split as arrays (not a regression or a streaming source)")
    from_logits = bool(plan.train.get("from_logits"))
    # As validation batches: fewer, larger calls cost less.
    batch_size = max(plan.train["batch_size"], min(len(x), 1024))
    # No layer switched on: the inference-mode prediction `evaluate` scores.
    det = stochastic_call(model, x, 0, stochastic=(), batch_size=batch_size,
                          from_logits=from_logits)
    mc = predict_mc(model, x, predict["samples"], derive_seed(plan.seed, "predict"),
                    stochastic=PREDICT_MODES[predict["mode"]], batch_size=batch_size,
                    from_logits=from_logits)
    y = np.asarray(y)
    labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(len(y))
    out = _metrics(y, det, "test_")
    out["test_mc_accuracy"] = float(np.mean(mc.mean.argmax(axis=1) == labels))
    out.update(_metrics(y, mc.mean, "test_mc_"))
    out["test_mc_entropy"] = float(mc.entropy.mean())
    out["test_mc_mutual_information"] = float(mc.mutual_information.mean())
    terms = {"bins": BINS, "mode": predict["mode"], "samples": int(predict["samples"]),
             "deterministic": _bins(y, det), "mc": _bins(y, mc.mean)}
    return UncertaintyEvaluation(out, terms)

