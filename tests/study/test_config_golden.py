"""The normalised spec (``to_dict()``) and its hash are byte-identical to the pinned goldens.

The goldens were written by the validator this package replaced; a spec that
normalises differently would change its hash, and a store written before would
refuse to resume it. Regenerate (only when a change is meant to alter the
normalised form) with ``python tests/study/test_config_golden.py --write``.
"""

import json
import sys
from pathlib import Path

import pytest

from noisewise.study import load_spec

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "normalised_specs.json"


def _base(**sections):
    spec = {
        "study": {"name": "golden", "seeds": 3},
        "data": {"name": "circles"},
        "model": {"name": "mlp", "hidden": [8]},
        "arms": [{"name": "baseline"}],
    }
    spec.update(sections)
    return spec


def _arms(*arms):
    return [{"name": "baseline"}, *arms]


CASES = {
    "minimal": _base(),
    "defaults_spelled_out": _base(
        study={"name": "golden", "seeds": 30, "seed": 0, "reference": "baseline"},
        train={"epochs": 100, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.001,
               "optimizer_options": {}, "loss": "auto", "metrics": ["accuracy"],
               "validate_every": 1}),
    "grid_one_key": _base(arms=_arms(
        {"name": "pre", "noise": [{"type": "gaussian", "where": "pre_activation", "stddev": 1}],
         "grid": {"noise[0].stddev": [0.01, 1, 0.3]}})),
    "grid_two_keys_clash": _base(arms=_arms(
        {"name": "two", "noise": [
            {"type": "gaussian", "where": "input", "stddev": 0.1, "clip": [0, 1]},
            {"type": "multiplicative", "where": "post_activation", "stddev": 0.2}],
         "grid": {"noise[0].stddev": [0.1, 0.2], "noise[1].stddev": [0.3, 0.4]}})),
    "every_noise_type": _base(arms=_arms(
        {"name": "layers", "noise": [
            {"type": "gaussian", "where": "input", "stddev": 0.1, "relative": "std"},
            {"type": "uniform", "where": "pre_activation", "amplitude": 1,
             "relative": "range", "value_range": [0, 2], "sampler": "keras"},
            {"type": "multiplicative", "where": "post_activation", "stddev": 0.2},
            {"type": "salt_and_pepper", "where": "input", "rate": 0.05, "salt_ratio": 0.3},
            {"type": "poisson", "where": "input", "peak": 30, "active_at_inference": True}]},
        {"name": "dropouts", "noise": [
            {"type": "dropout", "where": "post_activation", "rate": 0.2, "noise_shape": [1, 8]},
            {"type": "gaussian_dropout", "where": "pre_activation", "rate": 0.1},
            {"type": "alpha_dropout", "where": "input", "rate": 0},
        ]},
        {"name": "whole", "noise": [
            {"type": "weight", "stddev": 0.05, "targets": ["kernel", "bias"], "relative": True},
            {"type": "gradient", "eta": 0.01, "gamma": 0.55}]})),
    "adversarial": _base(arms=_arms(
        {"name": "pgd", "noise": [{"type": "adversarial", "attack": "pgd", "eps": 0.1,
                                   "norm": "l2", "step_size": 0.05, "ratio": 0.5,
                                   "noise_stddev": 0.1, "clip": [0, 1], "random_start": False}]},
        {"name": "fgsm", "noise": [{"type": "adversarial", "attack": "fgsm", "eps": 0.03}],
         "grid": {"noise[0].eps": [0.01, 0.03]}})),
    "augment_with_grid": _base(data={"name": "digits", "test_size": 0.3}, arms=_arms(
        {"name": "aug", "augment": [
            {"type": "rotate", "factor": 10, "unit": "degrees"},
            {"type": "gaussian_noise", "noise_std": 0.05},
            {"type": "flip", "mode": "horizontal"}],
         "augment_value_range": [0, 16],
         "grid": {"augment[1].noise_std": [0.05, 0.1], "augment[0].factor": [5, 15]}},
        {"name": "aug_noise", "augment": [{"type": "brightness", "factor": 0.1}],
         "noise": [{"type": "gaussian", "where": "input", "stddev": 0.1}]})),
    "robustness": _base(robustness={
        "clip": [0.0, 1.0], "max_examples": 50,
        "noise": [{"type": "gaussian", "levels": [0.1, 0.3], "draws": 2}],
        "attacks": [{"type": "fgsm", "eps": [0.05, 0.1]},
                    {"type": "pgd", "eps": 0.1, "norm": "linf", "steps": 5}],
        "smoothing": {"sigma": 0.25, "n0": 10, "n": 100, "alpha": 0.01, "radii": [0.0, 0.25]},
        "corruptions": {"names": ["gaussian_noise"], "severities": [1, 2]}}),
    "builder_and_options": _base(
        model={"builder": "my_models:build", "width": 32, "depth": 2},
        train={"epochs": 7, "optimizer": "sgd", "learning_rate": 0.1,
               "optimizer_options": {"momentum": 0.9, "nesterov": True},
               "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy", "mse"]}),
    "loader_nonfinite": _base(data={"loader": "my_data:load", "n": 100, "nonfinite": "drop"},
                              study={"name": "golden", "seeds": 2, "seed": 9,
                                     "store": "runs/golden.db"}),
    "loader_refuse_default": _base(data={"loader": "pkg.data:load", "nonfinite": "refuse"}),
    "csv": _base(data={"path": "data/table.csv", "target": "label", "test_size": 0.25,
                       "split_seed": 3}),
    "csv_nonfinite": _base(data={"path": "t.CSV", "nonfinite": "drop"}),
    "npz": _base(data={"path": "arrays.npz"}),
    "cnn": _base(data={"name": "digits"},
                 model={"name": "cnn", "filters": [4, 8], "kernel_size": 3, "pool": 2,
                        "hidden": [16], "activation": "tanh"},
                 arms=_arms({"name": "w", "noise": [{"type": "weight", "stddev": 0.01}]})),
    "moons_reference": _base(data={"name": "moons", "n_samples": 300, "noise": 0.2},
                             study={"name": "golden", "reference": "noisy"},
                             arms=_arms({"name": "noisy", "noise": [
                                 {"type": "gaussian", "where": "input", "stddev": 0.5}]})),
}
OVERRIDES = {"override_seeds_epochs": ("minimal", {"seeds": 5, "epochs": 3}),
             "override_same_values": ("minimal", {"seeds": 3})}


def _examples():
    return sorted((ROOT / "examples").glob("*.toml"))


def normalised():
    """``{case: canonical JSON of to_dict()}`` and each spec hash, from the current code."""
    out = {}
    for path in _examples():
        spec = load_spec(path)
        out[f"examples/{path.name}"] = [_canonical(spec.to_dict()), spec.spec_hash]
    for name, raw in CASES.items():
        spec = load_spec(raw)
        out[name] = [_canonical(spec.to_dict()), spec.spec_hash]
    for name, (case, kwargs) in OVERRIDES.items():
        spec = load_spec(CASES[case], **kwargs)
        out[name] = [_canonical(spec.to_dict()), spec.spec_hash]
    return out


def _canonical(d):
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


def test_every_example_and_case_has_a_golden(golden):
    names = {f"examples/{p.name}" for p in _examples()} | set(CASES) | set(OVERRIDES)
    assert names == set(golden)
    assert len(CASES) >= 10


@pytest.mark.parametrize("name", sorted(CASES) + sorted(OVERRIDES))
def test_normalised_spec_is_byte_identical(golden, name):
    case, kwargs = OVERRIDES.get(name, (name, {}))
    spec = load_spec(CASES[case], **kwargs)
    assert [_canonical(spec.to_dict()), spec.spec_hash] == golden[name]


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.name)
def test_examples_normalise_byte_identically(golden, path):
    spec = load_spec(path)
    assert [_canonical(spec.to_dict()), spec.spec_hash] == golden[f"examples/{path.name}"]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.write_text(json.dumps(normalised(), indent=1, sort_keys=True) + "\n")
