"""Choices the parsers offer, written out so that ``--help`` imports no heavy module.

Each tuple mirrors a list in the library; tests/cli/test_cli_startup.py checks
that they stay equal, so a new name there fails the tests until it is added here.
"""

EXECUTORS = ("auto", "vmap", "fit")  # noisewise.study.Study.run(executor=...)
RECORD_FORMATS = ("csv", "json")  # noisewise.study.exports.write_records
EXPORT_FORMATS = ("tensorboard", "mlflow")  # noisewise.study.exports.FORMATS
STUDY_DATASETS = ("circles", "moons", "digits", "breast_cancer", "sine")  # study.datasets.BUILTIN
# noisewise.layers.NOISE_LAYERS
NOISE_TYPES = ("gaussian", "multiplicative", "uniform", "salt_and_pepper", "poisson")
ATTACKS = ("fgsm", "pgd")  # the attacks of a [robustness] config
NORMS = ("linf", "l2")  # noisewise.robust.attacks.NORMS
PREVIEW_DATASETS = ("sample_images", "digits")  # noisewise.augment.preview.DATASETS
CORRUPTION_PRESETS = ("imagenet", "cifar")  # noisewise.augment.corruptions.PRESETS
