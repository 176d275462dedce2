"""Gaussian noise for tables, scaled per feature from the training data.

Features of a table live on different scales (age in years, income in euros), so
one noise level for all of them is meaningless. :class:`TabularNoise` learns
each column's standard deviation from the training data, sklearn-style
(``adapt`` is ``fit``), and adds ``stddev * std_j * N(0, 1)`` to column j,
never touching the columns the user marks categorical (adding 0.3 to a category
code invents a category) or constant columns (their std is 0, and noise there
would only leak a feature the model has never seen vary).

Noise injection as a regulariser for tabular inputs follows Bishop (1995),
"Training with noise is equivalent to Tikhonov regularization", Neural
Computation 7(1).
"""

import keras
import numpy as np
from keras import ops

from noisewise._core.validation import check_non_negative
from noisewise.random import layer_seed


def _column_indices(name, marked, n_features, columns):
    indices = []
    for c in marked or ():
        if isinstance(c, str):
            if columns is None or c not in columns:
                raise ValueError(
                    f"`{name}` names column {c!r}, but the data has "
                    f"{'no column names' if columns is None else 'columns ' + repr(columns)}"
                )
            c = columns.index(c)
        is_index = isinstance(c, (int, np.integer)) and not isinstance(c, bool)
        if not is_index or not -n_features <= c < n_features:
            raise ValueError(
                f"`{name}` must list column indices in [0, {n_features}) or column "
                f"names. Received: {c!r}"
            )
        indices.append(int(c) % n_features)
    return sorted(set(indices))


@keras.saving.register_keras_serializable(package="noisewise")
class TabularNoise(keras.layers.Layer):
    """Per-feature Gaussian noise: ``x_j + stddev * std_j * N(0, 1)`` on numeric columns.

    Args:
        stddev: Noise level as a fraction of each column's training standard
            deviation, >= 0 (0.1 adds noise one tenth of each feature's spread).
        categorical: Column indices (or names, when adapting a DataFrame) that
            never get noise.
        constant: Columns the user marks as constant (indices or names): no
            noise, whatever their spread in the training data.
        constant_tol: Besides those, a column whose training std is at most
            ``constant_tol * max(1, |mean|)`` counts as constant and gets no noise.
        seed: Optional non-negative integer.
        scale: Fitted per-column noise std (as in ``scale_``), to restore a
            saved layer without adapting again; normally left None.

    Fitted attributes (after :meth:`adapt`):
        scale_: Per-column noise std in data units (0 where no noise).
        categorical_: Sorted categorical column indices.
        constant_: Sorted indices of the constant columns (marked or detected).

    Call arguments:
        inputs: (batch, features) tensor.
        training: Noise only when True (default False, like Keras' noise layers).

    Example:
        >>> import numpy as np
        >>> from noisewise.augment import TabularNoise
        >>> x = np.array([[1.0, 0, 5], [3.0, 1, 5], [5.0, 2, 5]])
        >>> layer = TabularNoise(0.1, categorical=[1], seed=0).adapt(x)
        >>> layer.scale_.round(4).tolist(), layer.constant_
        ([0.1633, 0.0, 0.0], [2])
    """

    def __init__(self, stddev=0.1, categorical=None, constant_tol=1e-8, seed=None, scale=None,
                 constant=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = check_non_negative("stddev", stddev)
        self.categorical = None if categorical is None else list(categorical)
        self.constant = None if constant is None else list(constant)
        self.constant_tol = check_non_negative("constant_tol", constant_tol)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(layer_seed(seed))
        self.scale_ = None
        self._scale = None
        if scale is not None:
            received = scale
            try:
                scale = np.asarray(scale, dtype="float64")
            except (ValueError, TypeError, OverflowError):
                scale = np.array([np.nan])  # refused below, with the value received
            if scale.ndim != 1 or not np.isfinite(scale).all() or (scale < 0).any():
                raise ValueError("`scale` must be a list of finite numbers >= 0, one per "
                                 f"feature. Received: scale={received!r}")
            self._set_scale(scale)

    def _set_scale(self, scale):
        if self._scale is None:
            self._scale = self.add_weight(
                name="scale", shape=(scale.shape[0],), initializer="zeros", trainable=False
            )
        elif self._scale.shape[0] != scale.shape[0]:
            raise ValueError(
                f"`adapt` got {scale.shape[0]} features, but the layer was adapted to "
                f"{self._scale.shape[0]}"
            )
        self._scale.assign(scale.astype("float32"))
        self.scale_ = scale
        self.built = True

    def adapt(self, data):
        """Learn each column's std from training data (array or DataFrame); returns self."""
        columns = list(data.columns) if hasattr(data, "columns") else None
        x = np.asarray(data, dtype="float64")
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(
                f"`adapt` needs a 2-D table with at least 2 rows. Received: shape={x.shape}"
            )
        n_features = x.shape[1]
        self.categorical_ = _column_indices("categorical", self.categorical, n_features, columns)
        marked = _column_indices("constant", self.constant, n_features, columns)
        std = np.nanstd(x, axis=0)
        mean = np.abs(np.nanmean(x, axis=0))
        constant = std <= self.constant_tol * np.maximum(1.0, mean)
        constant[marked] = True
        self.constant_ = [int(i) for i in np.flatnonzero(constant)]
        scale = self.stddev * std
        scale[constant] = 0.0
        scale[self.categorical_] = 0.0
        self._set_scale(scale)
        return self

    def build(self, input_shape):
        if self._scale is None:
            raise ValueError("TabularNoise must be adapted first: call `layer.adapt(x_train)`.")
        self.built = True

    def call(self, inputs, training=False):
        if self._scale is None:
            raise ValueError("TabularNoise must be adapted first: call `layer.adapt(x_train)`.")
        x = ops.cast(inputs, self.compute_dtype)
        if not training:
            return x
        z = keras.random.normal(ops.shape(x), dtype=x.dtype, seed=self.seed_generator)
        return x + ops.cast(self._scale, x.dtype) * z

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "stddev": self.stddev,
            "categorical": self.categorical,
            "constant": self.constant,
            "constant_tol": self.constant_tol,
            "seed": self.seed,
            "scale": None if self.scale_ is None else [float(v) for v in self.scale_],
        }
