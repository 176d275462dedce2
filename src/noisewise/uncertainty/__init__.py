"""Monte Carlo prediction and the metrics of predictive uncertainty.

:func:`predict_mc` runs a trained model ``n`` times with its stochastic
layers drawing (MC dropout, Gal and Ghahramani 2016; noise layers and weight
noise kept on; test-time augmentation) and returns the mean probabilities
with their predictive entropy, mutual information (BALD, Houlsby et al.
2011) and per-class spread. The metrics (:func:`expected_calibration_error`,
:func:`reliability`, :func:`negative_log_likelihood`, :func:`brier_score`,
:func:`aurc`, :func:`accuracy_coverage`) take labels and probabilities as
NumPy arrays, from this or any other model.

How the stochastic layers are switched on: calling a model with
``training=True`` would also put ``BatchNormalization`` into training mode
(batch statistics, moving averages updated). Instead the model is called with
``training=False`` and only the chosen layers draw: noisewise noise layers and
:class:`~noisewise.WeightNoise` through their own ``active_at_inference``
switch, other layers (Keras ``Dropout`` and ``GaussianNoise``, an
augmentation pipeline) by calling each of them with ``training=True``; both
are restored on exit, also after an error, and so are the seed generators'
states, so a model trains on afterwards as it would have.

Seeds: draw ``i`` of ``predict_mc(model, x, n, seed)`` uses the seed
``draw_seeds(seed, n)[i]``, and every seed generator of the switched layers is
reset from that seed before the draw, so ``predict_mc(...).samples[i]`` equals
``stochastic_call(model, x, draw_seeds(seed, n)[i])`` whatever ran before
(numbers differ across backends, as ``noisewise.random`` says).

Example:
    >>> import keras, numpy as np
    >>> from noisewise.uncertainty import predict_mc, expected_calibration_error
    >>> inputs = keras.Input((4,))
    >>> hidden = keras.layers.Dropout(0.5, seed=0)(keras.layers.Dense(8)(inputs))
    >>> model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    >>> x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    >>> mc = predict_mc(model, x, n=4, seed=0)
    >>> mc.mean.shape, bool(np.allclose(mc.mean.sum(axis=1), 1.0))
    ((5, 3), True)
    >>> expected_calibration_error([0, 1], [[0.9, 0.1], [0.2, 0.8]], bins=10) > 0
    True
"""

from noisewise.uncertainty.metrics import (
    EPSILON,
    Reliability,
    accuracy_coverage,
    aurc,
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    reliability,
)
from noisewise.uncertainty.prediction import (
    DEFAULT_KINDS,
    KINDS,
    MCPrediction,
    draw_seeds,
    predict_mc,
    stochastic_call,
    stochastic_layers,
)

__all__ = [
    "DEFAULT_KINDS",
    "EPSILON",
    "KINDS",
    "MCPrediction",
    "Reliability",
    "accuracy_coverage",
    "aurc",
    "brier_score",
    "draw_seeds",
    "expected_calibration_error",
    "negative_log_likelihood",
    "predict_mc",
    "reliability",
    "stochastic_call",
    "stochastic_layers",
]
