"""Noise sweeps, corruption tables, mCE and the study-facing evaluation."""

import json

import keras
import numpy as np
import pytest
from scipy import stats

import noisewise
from noisewise.random import derive_seed, replica_seed
from noisewise.robust import (
    corruption_table,
    evaluate_for_study,
    fgsm,
    mce,
    mce_from_metrics,
    noise_sweep,
)
from noisewise.robust._study import evaluate
from noisewise.robust.evaluate import t_interval


def test_mce_on_a_hand_computed_example():
    errors = {"blur": [0.2, 0.3, 0.4], "snow": [0.1, 0.1, 0.2]}
    base = {"blur": [0.3, 0.4, 0.5], "snow": [0.2, 0.2, 0.4]}
    out = mce(errors, base, clean_error=0.05, baseline_clean_error=0.1)
    # CE_blur = 0.9 / 1.2 = 0.75, CE_snow = 0.4 / 0.8 = 0.5, mCE = 0.625.
    assert out["ce"] == pytest.approx({"blur": 0.75, "snow": 0.5})
    assert out["mce"] == pytest.approx(0.625)
    # relative: blur (0.9 - 3 * 0.05) / (1.2 - 3 * 0.1) = 0.75 / 0.9; snow 0.25 / 0.5.
    assert out["relative_ce"] == pytest.approx({"blur": 0.75 / 0.9, "snow": 0.5})
    assert out["relative_mce"] == pytest.approx((0.75 / 0.9 + 0.5) / 2)
    with pytest.raises(ValueError, match="same corruptions"):
        mce({"blur": [0.1]}, {"snow": [0.1]})


@pytest.fixture(scope="module")
def linear():
    """A binary linear classifier f(x) = [w.x + b > 0] and labelled points around it."""
    rng = np.random.default_rng(5)
    w, b = rng.normal(size=4), 0.2
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.set_weights([w[:, None].astype("float32"), np.array([b], "float32")])
    x = rng.uniform(0, 1, size=(500, 4)).astype("float32")
    y = ((x @ w + b + rng.normal(scale=0.3, size=500)) > 0).astype(int)
    return model, w, b, x, y


def test_gaussian_sweep_matches_the_analytic_accuracy(linear):
    # Under N(0, s^2 I) the margin w.x + b + w.e is normal with sd s ||w||, so point i
    # is classified 1 with probability q_i = Phi(m_i / (s ||w||)) and is right with
    # P_i = q_i or 1 - q_i. One draw's accuracy has mean mean(P) and variance
    # sum P(1 - P) / n^2; the mean of D draws has that variance / D.
    model, w, b, x, y = linear
    levels, draws = [0.2, 0.5, 1.0], 4
    result = noise_sweep(model, x, y, "gaussian", levels, draws=draws, seed=0)
    m = x.astype(float) @ w + b
    for level, scores in zip(levels, result.scores):
        q = stats.norm.cdf(m / (level * np.linalg.norm(w)))
        p = np.where(y == 1, q, 1 - q)
        se = np.sqrt(np.sum(p * (1 - p))) / len(p) / np.sqrt(draws)
        assert abs(scores.mean() - p.mean()) < 4 * se


def test_sweep_level_zero_is_clean_accuracy_and_draws_replay_from_seed(linear):
    model, _, _, x, y = linear
    clean = np.mean((model.predict(x, verbose=0)[:, 0] > 0) == y)
    result = noise_sweep(model, x, y, levels=[0.0, 0.3], draws=3, seed=1)
    assert np.all(result.scores[0] == clean)
    row = result.rows()[0]
    assert row["mean"] == clean and row["ci_low"] == row["ci_high"] == clean
    assert np.array_equal(result.scores, noise_sweep(model, x, y, levels=[0.0, 0.3], draws=3, seed=1).scores)
    other = noise_sweep(model, x, y, levels=[0.0, 0.3], draws=3, seed=2)
    assert not np.array_equal(result.scores, other.scores)
    assert "gaussian noise" in str(result)


@pytest.mark.parametrize("noise, levels, kwargs", [
    ("uniform", [0.0, 2.0], {}),
    ("multiplicative", [0.0, 3.0], {}),
    ("salt_and_pepper", [0.0, 0.8], {"value_range": (0.0, 1.0)}),
    ("poisson", [1e6, 0.5], {"value_range": (0.0, 1.0)}),
])
def test_other_noise_families(linear, noise, levels, kwargs):
    model, _, _, x, y = linear
    clean = np.mean((model.predict(x, verbose=0)[:, 0] > 0) == y)
    result = noise_sweep(model, x, y, noise, levels, draws=2, seed=0, clip=(0.0, 1.0), **kwargs)
    # The first level adds (almost) nothing; at the second, the 500 points'
    # accuracy falls far beyond its sampling error (sd <= 0.5 / sqrt(500) = 0.022).
    assert abs(result.scores[0].mean() - clean) < 0.01
    assert result.scores[1].mean() < clean - 0.1


def test_sweep_refuses_bad_inputs(linear):
    model, _, _, x, y = linear
    with pytest.raises(ValueError, match="noise.*Received: noise='pink'"):
        noise_sweep(model, x, y, "pink", [0.1])
    with pytest.raises(ValueError, match="stddev.*Received: stddev=-0.1"):
        noise_sweep(model, x, y, "gaussian", [-0.1])
    with pytest.raises(ValueError, match="draws.*Received: draws=0"):
        noise_sweep(model, x, y, draws=0)


def test_t_interval():
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert np.isnan(t_interval([1.0])[1])
    # An accuracy cannot leave [0, 1]: the interval is cut there, the mean is not moved.
    assert t_interval([1.0, 1.0, 0.9], bounds=(0.0, 1.0))[2] == 1.0
    assert t_interval([1.0, 1.0, 0.9])[2] > 1.0
    assert t_interval([0.0, 0.0, 0.1], bounds=(0.0, 1.0))[:2] == pytest.approx((1 / 30, 0.0))


def shift(images, severity, seed):
    return np.clip(images + 0.15 * severity, 0.0, 1.0)


def speckle(images, severity, seed):
    rng = np.random.default_rng(seed)
    return np.clip(images + 0.2 * severity * rng.normal(size=images.shape), 0.0, 1.0)


def test_corruption_table_and_mce_against_a_baseline(linear):
    model, w, b, x, y = linear
    baseline = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    baseline.set_weights([(w[:, None] + 0.5).astype("float32"), np.array([b], "float32")])
    result = corruption_table(model, x, y, [shift, speckle], severities=[1, 2, 3], baseline=baseline,
                              seed=0, image_shape=(2, 2))
    def acc(m, inputs):
        return np.mean((m.predict(inputs, verbose=0)[:, 0] > 0) == y)
    for s_i, s in enumerate([1, 2, 3]):
        assert result.accuracy["shift"][s_i] == acc(model, shift(x, s, None))
        noisy = speckle(x.reshape(-1, 2, 2), s, derive_seed(0, "corruption", "speckle", s)).reshape(x.shape)
        assert result.accuracy["speckle"][s_i] == pytest.approx(acc(model, noisy))
        assert result.baseline_accuracy["speckle"][s_i] == pytest.approx(acc(baseline, noisy))
    assert result.clean_accuracy == acc(model, x)
    expected = mce(result.errors(), {c: 1 - np.asarray(a) for c, a in result.baseline_accuracy.items()},
                   1 - result.clean_accuracy, 1 - result.baseline_clean_accuracy)
    assert result.mce() == expected
    assert "mCE" in str(result)


def test_corruption_table_refuses_a_non_callable(linear):
    model, _, _, x, y = linear
    with pytest.raises(ValueError, match="name or a callable"):
        corruption_table(model, x, y, {"bad": 3})


def test_named_corruptions_of_noisewise_augment_on_digits():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    clf = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    model.set_weights([clf.coef_.T.astype("float32"), clf.intercept_.astype("float32")])
    result = corruption_table(model, x[1000:1300], y[1000:1300], ["gaussian_noise", "contrast"], [1, 5],
                              seed=0, image_shape=(8, 8, 1), preset="cifar")
    assert result.clean_accuracy == np.mean(clf.predict(x[1000:1300]) == y[1000:1300])
    # Severity 5 contrast (cifar preset: pixels pulled to 15% of their distance
    # from the mean) costs far more than the sampling error of an accuracy on
    # 300 points (sd <= 0.5 / sqrt(300) = 0.03); severity 1 (75%) costs little.
    assert result.accuracy["contrast"][1] < result.clean_accuracy - 0.1
    assert result.accuracy["contrast"][0] > result.accuracy["contrast"][1]
    again = corruption_table(model, x[1000:1300], y[1000:1300], ["gaussian_noise"], [5], seed=0,
                             image_shape=(8, 8, 1), preset="cifar")
    assert again.accuracy["gaussian_noise"][0] == result.accuracy["gaussian_noise"][1]


@pytest.fixture(scope="module")
def three_class():
    rng = np.random.default_rng(8)
    W = rng.normal(size=(5, 3)).astype("float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.set_weights([W, np.zeros(3, "float32")])
    x = rng.uniform(size=(60, 5)).astype("float32")
    y = (x @ W + rng.normal(scale=0.3, size=(60, 3))).argmax(axis=1)
    return model, x, y


CONFIG = {
    "clip": [0.0, 1.0],
    "noise": [{"type": "gaussian", "levels": [0.1, 0.3], "draws": 2}],
    "attacks": [{"type": "fgsm", "eps": [0.05, 0.1]}, {"type": "pgd", "eps": 0.5, "norm": "l2", "steps": 3}],
    "smoothing": {"sigma": 0.25, "n0": 20, "n": 100, "alpha": 0.01, "radii": [0.0, 0.25]},
    "corruptions": {"names": [shift], "severities": [1, 2]},
}


def test_evaluate_for_study_returns_flat_documented_metrics(three_class):
    model, x, y = three_class
    metrics = evaluate_for_study(model, x, y, CONFIG, seed=3)
    assert set(metrics) == {
        "clean_acc", "noise_acc@gaussian=0.1", "noise_acc@gaussian=0.3",
        "adv_acc@fgsm_linf=0.05", "adv_acc@fgsm_linf=0.1", "adv_acc@pgd_l2=0.5",
        "certified_acc@r=0", "certified_acc@r=0.25", "smoothing_abstain_rate",
        "corruption_acc@shift=1", "corruption_acc@shift=2", "corruption_acc_mean",
    }
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in metrics.values())
    assert metrics["clean_acc"] == np.mean(model.predict(x, verbose=0).argmax(1) == y)
    x_adv = fgsm(model, x, y, 0.1, clip=(0.0, 1.0))
    assert metrics["adv_acc@fgsm_linf=0.1"] == np.mean(model.predict(x_adv, verbose=0).argmax(1) == y)
    assert metrics["certified_acc@r=0.25"] <= metrics["certified_acc@r=0"]
    assert metrics == evaluate_for_study(model, x, y, CONFIG, seed=3)
    baseline = dict(metrics, **{"corruption_acc@shift=1": 0.5, "corruption_acc@shift=2": 0.25})
    assert mce_from_metrics(metrics, metrics)["mce"] == pytest.approx(1.0)
    assert mce_from_metrics(metrics, baseline)["ce"]["shift"] == pytest.approx(
        (2 - metrics["corruption_acc@shift=1"] - metrics["corruption_acc@shift=2"]) / 1.25)


@pytest.mark.parametrize("config, message", [
    ({"noise_levels": [0.1]}, "config.noise_levels"),
    ({"attacks": [{"type": "cw"}]}, r"attacks\[0\].type"),
    ({"attacks": [{"type": "fgsm", "epsilon": 0.1}]}, r"attacks\[0\].epsilon"),
    ({"smoothing": {"n": 100}}, "smoothing.sigma"),
    ({"smoothing": {"sigma": 0.1, "n0": 200, "n": 100}}, "n0"),
])
def test_evaluate_for_study_refuses_bad_configs(three_class, config, message):
    model, x, y = three_class
    with pytest.raises(ValueError, match=message):
        evaluate_for_study(model, x, y, config, seed=0)


SIGMA = 0.5


@pytest.mark.slow
def test_gaussian_training_raises_certified_accuracy_at_radius_sigma_on_digits():
    """Two study arms on digits, paired over replica seeds, compared via evaluate_for_study.

    Arms: "baseline" (an MLP) and "gaussian_input" (the same MLP with
    GaussianNoise(SIGMA) at its input during training, as Cohen et al. train
    base classifiers). Replica i has the same initial weights and data order in
    both arms. The claim is a paired mean difference in certified accuracy at
    radius SIGMA whose one-sided 95% t lower bound is above 0.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    config = {"smoothing": {"sigma": SIGMA, "n0": 50, "n": 500, "alpha": 0.001, "radii": [0.0, SIGMA],
                            "max_examples": 200}}

    def run(seed, noise):
        def init(i):
            return keras.initializers.GlorotUniform(seed=derive_seed(seed, "init", i))
        layers = [keras.Input((64,))]
        if noise:
            layers.append(noisewise.GaussianNoise(SIGMA, seed=derive_seed(seed, "noise")))
        layers += [keras.layers.Dense(128, activation="relu", kernel_initializer=init(0)),
                   keras.layers.Dense(10, kernel_initializer=init(1))]
        model = keras.Sequential(layers)
        model.compile(keras.optimizers.Adam(3e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        order = np.random.default_rng(seed).permutation(len(x_train))
        model.fit(x_train[order], y_train[order], epochs=15, batch_size=128, shuffle=False, verbose=0)
        return evaluate_for_study(model, x_test, y_test, config, seed)

    key = f"certified_acc@r={SIGMA:g}"
    results = {arm: [] for arm in ("baseline", "gaussian_input")}
    for i in range(3):
        seed = replica_seed(0, i)
        results["baseline"].append(run(seed, False)[key])
        results["gaussian_input"].append(run(seed, True)[key])
    diff = np.array(results["gaussian_input"]) - np.array(results["baseline"])
    lower = diff.mean() - stats.t.ppf(0.95, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    print({arm: [round(v, 3) for v in vals] for arm, vals in results.items()}, "diff CI lower", lower)
    assert lower > 0, results


def test_evaluate_states_every_setting_and_an_interval_over_examples(three_class):
    model, x, y = three_class
    result = evaluate(model, x, y, CONFIG, seed=3)
    assert result.metrics == evaluate_for_study(model, x, y, CONFIG, seed=3)
    assert [r["metric"] for r in result.records] == list(result.metrics)
    assert result.data == {"split": "test", "examples": 60, "available": 60, "shape": [5], "model_shape": [5],
                           "reshaped": False, "range": [float(x.min()), float(x.max())],
                           "range_source": "observed min and max of the 60 test examples",
                           "clip": [0.0, 1.0], "clip_source": "given", "seed": 3}
    records = {r["metric"]: r for r in result.records}
    pgd_record = records["adv_acc@pgd_l2=0.5"]
    assert {k: pgd_record[k] for k in ("attack", "norm", "eps", "steps", "random_start", "clip", "examples")} == {
        "attack": "pgd", "norm": "l2", "eps": 0.5, "steps": 3, "random_start": True, "clip": [0.0, 1.0],
        "examples": 60}
    assert pgd_record["step_size"] == pytest.approx(2.5 * 0.5 / 3)
    assert records["adv_acc@fgsm_linf=0.1"]["steps"] == 1
    cert = records["certified_acc@r=0.25"]
    assert {k: cert[k] for k in ("sigma", "n0", "n", "alpha", "radius", "clip", "examples")} == {
        "sigma": 0.25, "n0": 20, "n": 100, "alpha": 0.01, "radius": 0.25, "clip": None, "examples": 60}
    noise = records["noise_acc@gaussian=0.3"]
    assert (noise["clip"], noise["draws"], noise["interval"]) == ([0.0, 1.0], 2, "t 95% over 2 draws")
    for r in result.records:
        assert r["value"] == result.metrics[r["metric"]]
        if r["interval"] == "Clopper-Pearson 95% over examples":
            low, high = stats.binomtest(r["count"], 60).proportion_ci(method="exact")
            assert (r["ci_low"], r["ci_high"]) == pytest.approx((low, high))
            assert r["value"] == r["count"] / 60
    assert records["corruption_acc_mean"]["interval"] is None
    json.dumps(result.to_dict(), allow_nan=False)  # NaN is not JSON


def test_attacks_and_noise_clip_to_the_observed_data_range_unless_told(three_class):
    model, x, y = three_class
    config = {"attacks": [{"type": "fgsm", "eps": [0.3]}], "noise": [{"type": "gaussian", "levels": [0.5]}]}
    default = evaluate(model, x, y, config, seed=1)
    observed = [float(x.min()), float(x.max())]
    assert default.data["clip"] == observed
    assert default.metrics == evaluate_for_study(model, x, y, {**config, "clip": observed}, seed=1)
    x_adv = fgsm(model, x, y, 0.3, clip=tuple(observed))
    assert default.metrics["adv_acc@fgsm_linf=0.3"] == np.mean(model.predict(x_adv, verbose=0).argmax(1) == y)
    for off in ("none", None):
        unclipped = evaluate(model, x, y, {**config, "clip": off}, seed=1)
        assert unclipped.data["clip"] is None and unclipped.data["clip_source"].startswith("none")
        x_adv = fgsm(model, x, y, 0.3)
        assert unclipped.metrics["adv_acc@fgsm_linf=0.3"] == np.mean(model.predict(x_adv, verbose=0).argmax(1) == y)
    known = evaluate(model, x, y, config, seed=1, value_range=(-1.0, 2.0), range_source="the sensor's range")
    assert known.data["clip"] == [-1.0, 2.0] and known.data["clip_source"] == "the data's range: the sensor's range"
    with pytest.raises(ValueError, match="config.clip.*Received: config.clip='sometimes'"):
        evaluate(model, x, y, {"clip": "sometimes"}, seed=1)


def test_evaluate_reshapes_examples_of_the_models_size_and_refuses_others(three_class):
    model, x, y = three_class
    image = keras.Sequential([keras.Input((5, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    image.set_weights(model.get_weights())
    config = {"attacks": [{"type": "pgd", "eps": 0.1, "steps": 2}]}
    result = evaluate(image, x, y, config, seed=0)
    assert result.metrics == evaluate_for_study(model, x, y, config, seed=0)
    assert (result.data["shape"], result.data["model_shape"], result.data["reshaped"]) == ([5], [5, 1], True)
    with pytest.raises(ValueError, match=r"shape \(5,\) \(5 values\), but `x_test` holds examples of shape "
                                         r"\(4,\) \(4 values\) and cannot be reshaped"):
        evaluate(model, x[:, :4], y, config, seed=0)
