"""Robustness: evaluate under noise, corruption and attack; train adversarially; certify.

- :func:`noise_sweep`, :func:`corruption_table`, :func:`mce`: accuracy as test
  noise grows (CIs over draws), per corruption and severity, and mean
  corruption error against a baseline.
- :func:`fgsm`, :func:`pgd`: L-infinity and L2 attacks on any Keras 3 backend.
- :class:`AdversarialModel`: adversarial (and noisy) training with ``fit``.
- :class:`SmoothedClassifier`, :func:`certify`: randomized smoothing with
  certified L2 radii (Cohen, Rosenfeld and Kolter 2019).
- :func:`evaluate_for_study`: all of the above from a config, as flat metrics;
  :func:`evaluate_config` also returns, as an :class:`Evaluation`, every
  setting behind each figure and its interval over examples.
"""

from noisewise.robust._study import Evaluation, evaluate_for_study
from noisewise.robust._study import evaluate as evaluate_config
from noisewise.robust.adversarial import AdversarialModel, adversarial_model
from noisewise.robust.attacks import fgsm, pgd
from noisewise.robust.evaluate import (
    CorruptionResult,
    SweepResult,
    corruption_table,
    mce,
    mce_from_metrics,
    noise_sweep,
)
from noisewise.robust.smoothing import ABSTAIN, Certificate, SmoothedClassifier, certify

__all__ = [
    "ABSTAIN",
    "AdversarialModel",
    "Certificate",
    "CorruptionResult",
    "Evaluation",
    "SmoothedClassifier",
    "SweepResult",
    "adversarial_model",
    "certify",
    "corruption_table",
    "evaluate_config",
    "evaluate_for_study",
    "fgsm",
    "mce",
    "mce_from_metrics",
    "noise_sweep",
    "pgd",
]
