"""Augmentation for images, audio and tables, and graded image corruptions.

* :func:`image_pipeline` / :func:`from_spec`: an image augmentation pipeline
  (a Keras layer) from a short spec, built on Keras' preprocessing layers plus
  noisewise's noise layers; ``pipeline.augment(batch)`` for data pipelines.
* :class:`SNRNoise`, :class:`RandomGain`, :class:`RandomTimeShift`: audio.
* :class:`TabularNoise`: per-feature Gaussian noise for tables (``adapt`` first).
* :func:`corrupt` and ``CORRUPTIONS``: ImageNet-C / CIFAR-10-C corruptions at
  severities 1 to 5.
* :func:`noisewise.augment.preview.preview_grid`: a PNG grid of samples.

Example:
    >>> import numpy as np, noisewise
    >>> aug = noisewise.augment.image_pipeline(
    ...     [{"type": "flip", "mode": "horizontal"},
    ...      {"type": "gaussian_noise", "noise_std": 10}], seed=0)
    >>> aug.augment(np.zeros((2, 8, 8, 3), "uint8")).shape
    (2, 8, 8, 3)
"""

from noisewise.augment._geometry import (
    RandomCrop,
    RandomRotation,
    RandomShear,
    RandomTranslation,
    RandomZoom,
    affine_warp,
)
from noisewise.augment.audio import (
    COLORS,
    RandomGain,
    RandomTimeShift,
    SNRNoise,
    add_noise,
    colored_noise,
    measure_snr,
)
from noisewise.augment.corruptions import CORRUPTIONS, SEVERITY, corrupt
from noisewise.augment.image import (
    TRANSFORMS,
    AugmentPipeline,
    FastGaussianNoise,
    SensorNoise,
    from_spec,
    image_pipeline,
    validate_spec,
)
from noisewise.augment.tabular import TabularNoise

__all__ = [
    "COLORS",
    "CORRUPTIONS",
    "SEVERITY",
    "TRANSFORMS",
    "AugmentPipeline",
    "FastGaussianNoise",
    "RandomCrop",
    "RandomGain",
    "RandomRotation",
    "RandomShear",
    "RandomTimeShift",
    "RandomTranslation",
    "RandomZoom",
    "SNRNoise",
    "SensorNoise",
    "TabularNoise",
    "add_noise",
    "affine_warp",
    "colored_noise",
    "corrupt",
    "from_spec",
    "image_pipeline",
    "measure_snr",
    "validate_spec",
]
