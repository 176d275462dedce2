"""Robustness evaluation: accuracy as test noise grows, corruption tables and mCE.

:func:`noise_sweep` measures a metric at each level of a noise family with
several seeded noise draws per level and a t confidence interval over draws.
:func:`corruption_table` measures accuracy per corruption and severity and,
against a baseline model, the mean corruption error of Hendrycks and
Dietterich (2019), "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR. :func:`noisewise.robust.evaluate_for_study`
(in :mod:`noisewise.robust._study`) runs a whole robustness evaluation from a
config dict on top of these and returns flat metrics, so a study can compare
arms on robustness as well as clean accuracy.
"""

from dataclasses import dataclass

import numpy as np
from keras import ops
from scipy import stats

from noisewise._core.validation import check_choice, check_int, check_number, check_range
from noisewise.layers import NOISE_LAYERS
from noisewise.random import derive_seed
from noisewise.robust import _model


def _score(model, spec, x, y, metric, batch_size):
    out = _model.predict(model, x, batch_size)
    if metric == "accuracy":
        return float(np.mean(_model.classes_from_outputs(spec, out) == y))
    return float(metric(y, out))


def t_interval(values, confidence=0.95, bounds=None):
    """Mean and two-sided t confidence interval of ``values`` (NaN bounds for fewer than 2).

    Args:
        values: The sample (e.g. one accuracy per noise draw).
        confidence: Two-sided level in (0, 1).
        bounds: Optional ``(low, high)`` the quantity cannot leave (``(0, 1)``
            for an accuracy); the interval is cut there, as values beyond
            them are impossible, not merely unlikely.
    """
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, float(low), float(high)


@dataclass
class SweepResult:
    """Scores of :func:`noise_sweep`: ``scores[i, d]`` at ``levels[i]`` for draw ``d``.

    ``clip`` is the range noisy inputs were clipped to (None: not clipped) and
    ``examples`` the number of inputs each score is measured on.
    """

    noise: str
    levels: list
    scores: np.ndarray
    metric: str = "accuracy"
    clip: tuple | None = None
    examples: int | None = None

    def rows(self, confidence=0.95):
        """One dict per level: level, mean, std, ci_low, ci_high, draws."""
        rows = []
        bounds = (0.0, 1.0) if self.metric == "accuracy" else None
        for level, s in zip(self.levels, self.scores):
            mean, low, high = t_interval(s, confidence, bounds)
            std = float(s.std(ddof=1)) if len(s) > 1 else float("nan")
            rows.append({"level": level, "mean": mean, "std": std, "ci_low": low, "ci_high": high,
                         "draws": len(s)})
        return rows

    @property
    def mean(self):
        return self.scores.mean(axis=1)

    def __str__(self):
        on = f" on {self.examples} examples" if self.examples is not None else ""
        clip = "none" if self.clip is None else f"[{self.clip[0]:g}, {self.clip[1]:g}]"
        lines = [f"{self.noise} noise: {self.metric}{on}, clip {clip} "
                 f"(mean and 95% CI over {self.scores.shape[1]} draws)",
                 f"{'level':>10} {'mean':>8} {'ci_low':>8} {'ci_high':>8}"]
        lines += [f"{r['level']:>10g} {r['mean']:8.4f} {r['ci_low']:8.4f} {r['ci_high']:8.4f}"
                  for r in self.rows()]
        return "\n".join(lines)


def noise_sweep(model, x, y, noise="gaussian", levels=(0.0, 0.1, 0.2, 0.3, 0.5), *, draws=5, seed=0,
                clip=None, metric="accuracy", from_logits=None, batch_size=512, **noise_kwargs):
    """Measure ``metric`` on ``x`` with test-time noise at each level.

    Draw ``d`` uses the same seed at every level (common random numbers), so
    neighbouring levels and different models are compared on the same draws.

    Args:
        model: Keras classifier (or any model when ``metric`` is a callable).
        x, y: Test inputs and labels (NumPy).
        noise: A noise family of :data:`noisewise.layers.NOISE_LAYERS`:
            "gaussian", "uniform", "multiplicative", "salt_and_pepper", "poisson".
        levels: The layer's level at each step (stddev, amplitude, rate; for
            "poisson" the peak count, where larger means less noise).
        draws: Noise draws per level (>= 1); the CI is over draws.
        seed: Non-negative integer.
        clip: Optional ``(low, high)`` data range; noisy inputs are clipped to it.
        metric: "accuracy" or a callable ``metric(y, outputs) -> float``.
        from_logits: For accuracy of a binary one-unit output: None to detect.
        batch_size: Examples per forward pass.
        **noise_kwargs: More arguments of the noise layer (``relative``,
            ``value_range``, ``salt_ratio``, ...).

    Returns:
        A :class:`SweepResult`; ``print`` it for a table, ``rows()`` for records.

    Example:
        >>> import keras, numpy as np
        >>> from noisewise.robust import noise_sweep
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
        >>> x, y = np.random.default_rng(0).normal(size=(64, 2)), np.zeros(64, int)
        >>> result = noise_sweep(model, x, y, levels=[0.0, 1.0], draws=3, seed=0)
        >>> result.scores.shape
        (2, 3)
    """
    noise = check_choice("noise", noise, tuple(NOISE_LAYERS))
    draws = check_int("draws", draws, low=1)
    check_int("seed", seed, low=0)
    clip = check_range("clip", clip)
    x = _model.check_input(model, np.asarray(x, dtype="float32"))
    spec = None
    if metric == "accuracy":
        spec = _model.inspect_output(model, from_logits, probe=x[:2])
        y = _model.labels(y, spec)
    elif not callable(metric):
        raise ValueError(f"`metric` must be 'accuracy' or a callable. Received: metric={metric!r}")
    # Each level checked up front: an infinite one would fail only after the others ran.
    levels = [check_number(f"levels[{i}]", v) for i, v in enumerate(levels)]
    scores = np.zeros((len(levels), draws))
    for i, level in enumerate(levels):
        for d in range(draws):
            draw_seed = derive_seed(seed, "noise_sweep", d)
            layer = NOISE_LAYERS[noise](level, clip=clip, seed=draw_seed, **noise_kwargs)
            noisy = np.concatenate([
                _to_numpy(layer(x[s : s + batch_size], training=True))
                for s in range(0, len(x), batch_size)
            ])
            scores[i, d] = _score(model, spec, noisy, y, metric, batch_size)
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    return SweepResult(noise, levels, scores, name, clip, len(x))


def _to_numpy(t):
    return t if isinstance(t, np.ndarray) else np.asarray(ops.convert_to_numpy(t))


def mce(errors, baseline_errors, clean_error=None, baseline_clean_error=None):
    """Corruption errors and their means relative to a baseline (Hendrycks and Dietterich 2019).

    ``CE_c = sum_s E[s, c] / sum_s E_base[s, c]``, ``mCE = mean_c CE_c``, and
    with clean errors ``relative CE_c = sum_s (E[s, c] - E_clean) /
    sum_s (E_base[s, c] - E_base_clean)``. Ratios, not percentages: 1.0 is the
    baseline's level. A zero denominator gives NaN.

    Args:
        errors: ``{corruption: [error at each severity]}`` of the model.
        baseline_errors: The same for the baseline model (same keys and severities).
        clean_error, baseline_clean_error: Clean errors, for the relative mCE.

    Returns:
        Dict with "ce" and "relative_ce" (per corruption), "mce" and "relative_mce".

    Example:
        >>> from noisewise.robust import mce
        >>> out = mce({"blur": [0.2, 0.4]}, {"blur": [0.3, 0.5]}, 0.1, 0.1)
        >>> round(out["mce"], 4), round(out["relative_mce"], 4)   # 0.6 / 0.8, 0.4 / 0.6
        (0.75, 0.6667)
    """
    if set(errors) != set(baseline_errors):
        raise ValueError(
            "`errors` and `baseline_errors` must cover the same corruptions. Received: "
            f"{sorted(errors)} and {sorted(baseline_errors)}"
        )
    relative = clean_error is not None and baseline_clean_error is not None
    ce, rce = {}, {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for c in errors:
            e, b = np.asarray(errors[c], float), np.asarray(baseline_errors[c], float)
            if e.shape != b.shape:
                raise ValueError(f"Severities differ for corruption {c!r}. Received: {e.shape} and {b.shape}")
            ce[c] = float(e.sum() / b.sum()) if b.sum() != 0 else float("nan")
            if relative:
                den = (b - baseline_clean_error).sum()
                rce[c] = float((e - clean_error).sum() / den) if den != 0 else float("nan")
    out = {"ce": ce, "mce": float(np.mean(list(ce.values())))}
    if relative:
        out.update({"relative_ce": rce, "relative_mce": float(np.mean(list(rce.values())))})
    return out


@dataclass
class CorruptionResult:
    """Accuracy per corruption (rows) and severity (columns), for a model and optionally a baseline.

    ``skipped`` maps each corruption left out to the reason (e.g. saturate on
    one-channel images); :meth:`__str__` lists them under the table.
    """

    severities: list
    accuracy: dict
    clean_accuracy: float
    baseline_accuracy: dict = None
    baseline_clean_accuracy: float = None
    skipped: dict = None

    def __post_init__(self):
        self.skipped = {} if self.skipped is None else dict(self.skipped)

    def errors(self):
        return {c: 1.0 - np.asarray(a) for c, a in self.accuracy.items()}

    def mce(self):
        """:func:`mce` of this model against the baseline evaluated with it."""
        if self.baseline_accuracy is None:
            raise ValueError(
                "mCE needs a baseline: pass `baseline=` to corruption_table. Received: baseline=None")
        base = {c: 1.0 - np.asarray(a) for c, a in self.baseline_accuracy.items()}
        return mce(self.errors(), base, 1.0 - self.clean_accuracy, 1.0 - self.baseline_clean_accuracy)

    def __str__(self):
        head = f"{'corruption':<20}" + "".join(f"{'s=' + str(s):>8}" for s in self.severities)
        lines = [f"accuracy (clean {self.clean_accuracy:.4f})", head]
        lines += [f"{c:<20}" + "".join(f"{v:8.4f}" for v in a) for c, a in self.accuracy.items()]
        if self.baseline_accuracy is not None:
            m = self.mce()
            lines.append(f"mCE {m['mce']:.4f}  relative mCE {m['relative_mce']:.4f} (1.0 = baseline)")
        lines += [f"skipped {c}: {why}" for c, why in self.skipped.items()]
        return "\n".join(lines)


def _corruption_fns(corruptions, value_range, preset, channels=None):
    """``{name: fn(images, severity, seed)}`` from names, callables or a dict, and ``{name: reason}`` skipped.

    Named corruptions that cannot take images of ``channels`` channels
    (``COLOUR_CHANNELS``: saturate needs RGB) are skipped with a reason when
    ``corruptions`` is None and refused, before any work, when named.
    """
    skipped = {}
    if isinstance(corruptions, dict):
        items = list(corruptions.items())
    else:
        module = None
        if corruptions is None or any(isinstance(c, str) for c in corruptions):
            try:  # augment is a sibling package: needed only for corruptions given by name
                from noisewise.augment import corruptions as module
            except ImportError as err:
                raise ValueError(
                    "Named corruptions need noisewise.augment.corruptions; pass callables "
                    f"`fn(images, severity, seed)` instead. Received: corruptions={corruptions!r}"
                ) from err
        items = []
        for c in list(module.CORRUPTIONS) if corruptions is None else corruptions:
            allowed = module.COLOUR_CHANNELS.get(c, ()) if isinstance(c, str) else ()
            if channels is not None and allowed and channels not in allowed:
                why = f"needs {' or '.join(map(str, allowed))} channels; the images have {channels}"
                if corruptions is not None:
                    raise ValueError(f"Corruption {c!r} {why}. Received: corruptions={corruptions!r}")
                skipped[c] = why
                continue
            if isinstance(c, str):
                fn = (lambda name: lambda im, s, sd: module.corrupt(
                    im, name, s, seed=sd, value_range=value_range, **preset))(c)
                items.append((c, fn))
            else:
                items.append((getattr(c, "__name__", f"corruption_{len(items)}"), c))
    for name, fn in items:
        if not callable(fn):
            raise ValueError(f"Each corruption must be a name or a callable. Received: {name}={fn!r}")
    return dict(items), skipped


def corruption_table(model, x, y, corruptions=None, severities=(1, 2, 3, 4, 5), *, baseline=None, seed=0,
                     value_range=(0.0, 1.0), image_shape=None, preset=None, from_logits=None,
                     batch_size=512):
    """Accuracy under each corruption and severity, and mCE against ``baseline``.

    Args:
        model: Keras classifier.
        x, y: Test images and labels (NumPy).
        corruptions: None (every corruption of :mod:`noisewise.augment.corruptions`),
            a list of names and/or callables ``fn(images, severity, seed)``, or a
            dict ``{name: fn}``.
        severities: Severity levels passed to each corruption.
        baseline: Optional baseline Keras classifier, evaluated on the same
            corrupted images (its accuracies make :meth:`CorruptionResult.mce`).
        seed: Non-negative integer; corruption ``c`` at severity ``s`` uses
            ``derive_seed(seed, "corruption", c, s)``.
        value_range: Data range handed to named corruptions.
        image_shape: If the model's inputs are not images, the image shape to
            corrupt, e.g. ``(8, 8, 1)`` for flat digits (named corruptions
            need channels last); inputs are reshaped there and back.
        preset: Constants of the named corruptions, "imagenet" (their
            default) or "cifar" (for small images).
        from_logits, batch_size: As for :func:`noise_sweep`.

    Returns:
        A :class:`CorruptionResult`. With ``corruptions=None``, those that
        need colour (saturate) are skipped on one-channel images, with the
        reason in ``skipped``.
    """
    check_int("seed", seed, low=0)
    value_range = check_range("value_range", value_range, allow_none=False)
    x = np.asarray(x, dtype="float32")
    shape = x.shape if image_shape is None else (len(x),) + tuple(image_shape)
    fns, skipped = _corruption_fns(corruptions, value_range, {} if preset is None else {"preset": preset},
                                   shape[-1] if len(shape) == 4 else None)
    spec = _model.inspect_output(model, from_logits, probe=x[:2])
    y = _model.labels(y, spec)
    models = {"model": (model, spec)}
    if baseline is not None:
        models["baseline"] = (baseline, _model.inspect_output(baseline, None, probe=x[:2]))
    images = x if image_shape is None else x.reshape((len(x),) + tuple(image_shape))
    acc = {k: {} for k in models}
    for c, fn in fns.items():
        for k in models:
            acc[k][c] = []
        for s in severities:
            corrupted = _to_numpy(fn(images, s, derive_seed(seed, "corruption", c, int(s)))).astype("float32")
            corrupted = corrupted.reshape(x.shape)
            for k, (m, sp) in models.items():
                acc[k][c].append(_score(m, sp, corrupted, y, "accuracy", batch_size))
    clean = {k: _score(m, sp, x, y, "accuracy", batch_size) for k, (m, sp) in models.items()}
    return CorruptionResult(list(severities), acc["model"], clean["model"],
                            acc.get("baseline"), clean.get("baseline"), skipped)


def mce_from_metrics(metrics, baseline_metrics):
    """mCE from two :func:`evaluate_for_study` dicts (e.g. an arm and the reference arm of a study).

    Reads ``corruption_acc@NAME=SEVERITY`` and ``clean_acc`` from both.
    """
    def errors(m):
        out = {}
        for key, value in m.items():
            if key.startswith("corruption_acc@"):
                name, sev = key[len("corruption_acc@"):].rsplit("=", 1)
                out.setdefault(name, {})[float(sev)] = 1.0 - value
        return {c: [v[s] for s in sorted(v)] for c, v in out.items()}

    return mce(errors(metrics), errors(baseline_metrics),
               1.0 - metrics["clean_acc"], 1.0 - baseline_metrics["clean_acc"])

