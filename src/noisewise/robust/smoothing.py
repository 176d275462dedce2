"""Randomized smoothing: a classifier with a certified L2 robustness radius.

The smoothed classifier ``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ N(0, sigma^2 I)``,
returns the class the base classifier ``f`` picks most often under Gaussian
noise. If the top class has probability ``pA >= 1/2``, ``g`` is constant within
the L2 ball of radius ``sigma * Phi^-1(pA)`` around ``x``. PREDICT and CERTIFY
estimate this from Monte Carlo samples with a confidence level ``1 - alpha``.

Noise is drawn with NumPy, one generator per (seed, stage, index of the
point), so the noise is the same on every backend and does not depend on the
batch size.

Reference:
    Cohen, Rosenfeld and Kolter (2019), "Certified Adversarial Robustness via
    Randomized Smoothing", ICML (algorithms PREDICT and CERTIFY).
"""

from dataclasses import dataclass

import keras
import numpy as np
from scipy import stats

from noisewise._core.validation import check_int, check_number
from noisewise.robust import _model

ABSTAIN = -1
_STAGES = {"select": 0, "estimate": 1, "predict": 2}


def lower_confidence_bound(k, n, alpha):
    """One-sided ``1 - alpha`` Clopper-Pearson lower bound on a binomial proportion.

    ``beta.ppf(alpha, k, n - k + 1)``, and 0 when ``k == 0``.
    """
    k = np.asarray(k, dtype=float)
    with np.errstate(invalid="ignore"):
        bound = stats.beta.ppf(alpha, k, n - k + 1)
    return np.where(k > 0, bound, 0.0)


def clopper_pearson(k, n, confidence=0.95):
    """Two-sided exact (Clopper-Pearson) interval for ``k`` successes in ``n`` trials, within [0, 1].

    Its coverage is at least ``confidence`` for every true proportion, also
    near 0 and 1 where a normal interval leaves [0, 1]. NaN bounds for ``n == 0``.
    """
    if n == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2
    low = stats.beta.ppf(tail, k, n - k + 1) if k > 0 else 0.0
    high = stats.beta.ppf(1.0 - tail, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def binomial_p_value(k, n):
    """Two-sided exact binomial test of ``p = 1/2`` (vectorised ``scipy.stats.binomtest``)."""
    k, n = np.asarray(k), np.asarray(n)
    tail = stats.binom.cdf(np.minimum(k, n - k), n, 0.5)
    return np.where(n > 0, np.minimum(1.0, 2.0 * tail), 1.0)


def _check_alpha(alpha):
    return check_number("alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True)


@dataclass
class Certificate:
    """Result of :meth:`SmoothedClassifier.certify`, one entry per point.

    Attributes:
        prediction: Certified class, or ``ABSTAIN`` (-1).
        radius: Certified L2 radius ``sigma * Phi^-1(pa_lower)`` (0 when abstaining).
        pa_lower: Lower confidence bound on the top class's probability.
        count: Estimation samples (out of ``n``) that chose the selected class.
        sigma, n, alpha, n0: The noise level, estimation samples, failure
            probability and selection samples it was certified with.
    """

    prediction: np.ndarray
    radius: np.ndarray
    pa_lower: np.ndarray
    count: np.ndarray
    sigma: float
    n: int
    alpha: float
    n0: int | None = None

    def certified_accuracy(self, y, radius=0.0):
        """Fraction of points predicted correctly with a certified radius >= ``radius``."""
        y = np.asarray(y).reshape(-1)
        return float(np.mean((self.prediction == y) & (self.radius >= radius)))

    def curve(self, y, radii):
        """Certified accuracy at each radius in ``radii`` (the curve of Cohen et al., Fig. 3)."""
        return np.array([self.certified_accuracy(y, r) for r in radii])

    @property
    def abstain_rate(self):
        return float(np.mean(self.prediction == ABSTAIN))


class SmoothedClassifier:
    """The Gaussian-smoothed version of a Keras classifier.

    Args:
        model: Keras classifier (logits or probabilities; see
            :func:`noisewise.robust.fgsm`). Its predicted class is the base
            classifier ``f``.
        sigma: Noise standard deviation, > 0, in the data's units.
        from_logits: None to detect, or True/False (matters for a binary
            one-unit output, where the threshold is 0 or 0.5).
        batch_size: Noisy samples per forward pass.

    Example:
        >>> import keras, numpy as np
        >>> from noisewise.robust import SmoothedClassifier
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.set_weights([np.array([[1.0], [0.0]]), np.zeros(1)])
        >>> smooth = SmoothedClassifier(model, sigma=0.5)
        >>> cert = smooth.certify(np.array([[2.0, 0.0]]), n0=100, n=1000, alpha=0.001, seed=0)
        >>> int(cert.prediction[0]), bool(0.9 < cert.radius[0] < 2.0)
        (1, True)
    """

    def __init__(self, model, sigma, *, from_logits=None, batch_size=1000):
        self.model = model
        self.sigma = check_number("sigma", sigma, low=0.0, low_open=True)
        self.from_logits = from_logits
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.spec = _model.inspect_output(model, from_logits)

    def sample_counts(self, x, n, seed, stage="estimate"):
        """Counts of each class of ``f(x + noise)`` over ``n`` draws: shape (points, classes)."""
        x = _model.check_input(self.model, np.asarray(x, dtype="float32"))
        n = check_int("n", n, low=1)
        seed = check_int("seed", seed, low=0)
        counts = np.zeros((len(x), self.spec.classes), dtype=np.int64)
        # Several points share a forward pass when n is small; a large n is
        # split into chunks of one point each.
        per_batch = max(1, self.batch_size // n)
        chunk = min(n, self.batch_size)
        for start in range(0, len(x), per_batch):
            points = range(start, min(start + per_batch, len(x)))
            rngs = {i: np.random.default_rng((seed, _STAGES[stage], i)) for i in points}
            for s in range(0, n, chunk):
                m = min(chunk, n - s)
                noisy = np.concatenate([
                    x[i] + self.sigma * rngs[i].standard_normal((m,) + x.shape[1:], dtype=np.float32)
                    for i in points
                ])
                out = np.asarray(self.model.predict_on_batch(noisy))
                pred = _model.classes_from_outputs(self.spec, out).reshape(len(points), m)
                for j, i in enumerate(points):
                    counts[i] += np.bincount(pred[j], minlength=self.spec.classes)
        return counts

    def predict(self, x, n, alpha, *, seed=0):
        """PREDICT: the top class, or ``ABSTAIN`` unless a binomial test on the top two counts rejects a tie.

        The returned class differs from ``g(x)`` with probability at most ``alpha``.

        Args:
            x: Points (NumPy array, batch first).
            n: Noise samples per point.
            alpha: Level in (0, 1) of the binomial test.
            seed: Non-negative integer.
        """
        alpha = _check_alpha(alpha)
        counts = self.sample_counts(x, n, seed, stage="predict")
        order = np.argsort(-counts, axis=1, kind="stable")
        n_a = np.take_along_axis(counts, order[:, :1], axis=1)[:, 0]
        n_b = np.take_along_axis(counts, order[:, 1:2], axis=1)[:, 0]
        p = binomial_p_value(n_a, n_a + n_b)
        return np.where(p <= alpha, order[:, 0], ABSTAIN).astype(np.int64)

    def certify(self, x, n0, n, alpha, *, seed=0):
        """CERTIFY: select the top class from ``n0`` samples, bound its probability from ``n`` others.

        With probability at least ``1 - alpha`` over the noise, a returned class
        with radius ``R`` is ``g``'s prediction everywhere within L2 distance ``R``.

        Args:
            x: Points (NumPy array, batch first).
            n0: Selection samples per point, 1 <= n0 <= n.
            n: Estimation samples per point.
            alpha: Failure probability in (0, 1).
            seed: Non-negative integer.

        Returns:
            A :class:`Certificate`.
        """
        n0 = check_int("n0", n0, low=1)
        n = check_int("n", n, low=1)
        if n0 > n:
            raise ValueError(f"`n0` must be <= n. Received: n0={n0}, n={n}")
        alpha = _check_alpha(alpha)
        selected = self.sample_counts(x, n0, seed, stage="select").argmax(axis=1)
        counts = self.sample_counts(x, n, seed, stage="estimate")
        count = counts[np.arange(len(counts)), selected]
        pa_lower = lower_confidence_bound(count, n, alpha)
        certified = pa_lower >= 0.5
        radius = np.where(certified, self.sigma * stats.norm.ppf(np.maximum(pa_lower, 0.5)), 0.0)
        prediction = np.where(certified, selected, ABSTAIN).astype(np.int64)
        return Certificate(prediction, radius, pa_lower, count, self.sigma, n, alpha, n0)


def certify(model: keras.Model, x, sigma: float, *, n0: int = 100, n: int = 10_000, alpha: float = 0.001,
            seed: int = 0, from_logits: bool | None = None, batch_size: int = 1000) -> list[Certificate]:
    """CERTIFY ``x`` with the ``sigma``-smoothed ``model``; see :meth:`SmoothedClassifier.certify`."""
    smooth = SmoothedClassifier(model, sigma, from_logits=from_logits, batch_size=batch_size)
    return smooth.certify(x, n0, n, alpha, seed=seed)
