"""Jit-safe geometric layers: same output as Keras' layers, jit kept, crops consistent."""

import keras
import numpy as np
import pytest
import scipy.ndimage as ndi
from keras.src.utils.backend_utils import DynamicBackend

from noisewise.augment import (
    RandomCrop,
    RandomRotation,
    RandomShear,
    RandomTranslation,
    RandomZoom,
    affine_warp,
)

BACKEND = keras.backend.backend()
RNG = np.random.default_rng(0)
X = RNG.uniform(0, 255, (3, 17, 23, 3)).astype("float32")

PAIRS = [
    (RandomRotation, keras.layers.RandomRotation, (0.3,)),
    (RandomZoom, keras.layers.RandomZoom, (0.4, 0.3)),
    (RandomTranslation, keras.layers.RandomTranslation, (0.3, 0.2)),
    (RandomShear, keras.layers.RandomShear, (0.3, 0.2)),
]


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _cases():
    """Bilinear with reflect fill (Keras' default) for every layer and constant fill for
    rotation in the fast run; the rest with the slow tests."""
    for ours, theirs, args in PAIRS:
        for interpolation in ("bilinear", "nearest"):
            for fill_mode in ("constant", "nearest", "reflect", "wrap"):
                fast = interpolation == "bilinear" and (
                    fill_mode == "reflect" or (fill_mode == "constant" and ours is RandomRotation))
                yield pytest.param(ours, theirs, args, fill_mode, interpolation,
                                   marks=() if fast else pytest.mark.slow,
                                   id=f"{ours.__name__}-{interpolation}-{fill_mode}")


@pytest.mark.parametrize("ours, theirs, args, fill_mode, interpolation", list(_cases()))
def test_matches_keras_layer_with_same_seed(ours, theirs, args, fill_mode, interpolation):
    if fill_mode == "wrap" and BACKEND == "tensorflow":
        pytest.skip("TensorFlow's own resampler wraps coordinates differently from scipy/JAX")
    kwargs = dict(seed=3, fill_mode=fill_mode, interpolation=interpolation, fill_value=7.0)
    a = to_numpy(ours(*args, **kwargs)(X, training=True))
    b = to_numpy(theirs(*args, **kwargs)(X, training=True))
    np.testing.assert_allclose(a, b, atol=1e-3)  # float32 rounding of 255-scale values


@pytest.mark.parametrize("ours, theirs, args", PAIRS, ids=lambda v: getattr(v, "__name__", ""))
def test_inference_is_identity_and_jit_flag(ours, theirs, args):
    layer = ours(*args, seed=1)
    np.testing.assert_array_equal(to_numpy(layer(X, training=False)), X)
    assert layer.supports_jit and not theirs(*args).supports_jit


@pytest.mark.parametrize("factors", [(0.3, 0.2), ((0.1, 0.3), (0.0, 0.2))])
def test_shear_config_round_trips(factors, tmp_path):
    # Keras' own RandomShear writes x_factor=0.3 as (-0.3, 0.3), which its
    # constructor refuses, so a saved model with it did not load.
    layer = RandomShear(*factors, seed=1)
    config = layer.get_config()
    assert config["x_factor"] == (list(factors[0]) if isinstance(factors[0], tuple) else factors[0])
    clone = RandomShear.from_config(config)
    assert (clone.x_factor, clone.y_factor) == (layer.x_factor, layer.y_factor)
    model = keras.Sequential([keras.Input(X.shape[1:]), layer])
    model.save(tmp_path / "shear.keras")
    loaded = keras.saving.load_model(tmp_path / "shear.keras")
    np.testing.assert_array_equal(to_numpy(loaded(X, training=True)),
                                  to_numpy(model(X, training=True)))


def test_model_keeps_jit_with_noisewise_layer_only():
    def model(layer):
        inputs = keras.Input((17, 23, 3))
        m = keras.Model(inputs, keras.layers.Flatten()(layer(inputs)))
        m.compile(loss="mse", jit_compile=True)
        return m

    assert model(RandomRotation(0.1)).jit_compile is True
    with pytest.warns(UserWarning, match="doesn't support `jit_compile=True`"):
        assert model(keras.layers.RandomRotation(0.1)).jit_compile is False


def test_rotation_runs_under_jit():
    layer = RandomRotation(0.2, seed=0)
    if BACKEND == "jax":
        import jax

        layer.build(X.shape)
        fn = jax.jit(lambda v, x: layer.stateless_call([], v, x, training=True)[0])
        out = fn([v.value for v in layer.non_trainable_variables], X)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        out = tf.function(lambda x: layer(x, training=True), jit_compile=True)(X)
    else:
        pytest.skip("jit_compile means torch.compile on PyTorch; not exercised here")
    assert to_numpy(out).shape == X.shape


SCIPY_MODES = {"constant": "grid-constant", "nearest": "nearest", "wrap": "grid-wrap",
               "mirror": "mirror", "reflect": "reflect"}


@pytest.mark.parametrize("mode", sorted(SCIPY_MODES))
def test_affine_warp_matches_scipy_map_coordinates(mode):
    angle, scale = 0.4, 1.3
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    matrix = np.array([c, -s, 4.0, s, c, -3.0, 0.0, 0.0], "float32")
    out = to_numpy(affine_warp(DynamicBackend(), keras.ops.convert_to_tensor(X[0]),
                               keras.ops.convert_to_tensor(matrix), fill_mode=mode,
                               fill_value=5.0))
    ys, xs = np.mgrid[0:17, 0:23].astype("float64")
    src = [s * xs + c * ys - 3.0, c * xs - s * ys + 4.0]  # (row, column) read for each output
    for ch in range(3):
        ref = ndi.map_coordinates(X[0, :, :, ch].astype("float64"), src, order=1,
                                  mode=SCIPY_MODES[mode], cval=5.0)
        np.testing.assert_allclose(out[..., ch], ref, atol=1e-3)


def test_affine_warp_channels_first_and_output_size():
    shift = np.array([1, 0, 2, 0, 1, 3, 0, 0], "float32")  # x_in = x + 2, y_in = y + 3
    be = DynamicBackend()
    last = to_numpy(affine_warp(be, keras.ops.convert_to_tensor(X), keras.ops.convert_to_tensor(shift),
                                output_size=(5, 6)))
    np.testing.assert_allclose(last, X[:, 3:8, 2:8], atol=1e-4)
    first = to_numpy(affine_warp(be, keras.ops.convert_to_tensor(X.transpose(0, 3, 1, 2)),
                                 keras.ops.convert_to_tensor(shift), output_size=(5, 6),
                                 data_format="channels_first"))
    np.testing.assert_allclose(first.transpose(0, 2, 3, 1), last, atol=1e-4)


def test_random_crop_shapes_windows_and_center_at_inference():
    crop = RandomCrop(10, 12, seed=1)
    batch = np.repeat(X[:1], 16, axis=0)
    out = to_numpy(crop(batch, training=True))
    assert out.shape == (16, 10, 12, 3) and out.dtype == np.float32
    offsets = set()
    for image in out:
        found = [(t, j) for t in range(8) for j in range(12)
                 if np.array_equal(image, batch[0, t:t + 10, j:j + 12])]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 1  # each image has its own offset
    center = to_numpy(crop(batch, training=False))
    np.testing.assert_array_equal(center, batch[:, 3:13, 5:17])
    assert crop.compute_output_shape((None, 17, 23, 3)) == (None, 10, 12, 3)


def test_random_crop_offsets_are_uniform():
    crop = RandomCrop(4, 4, seed=2)
    image = np.arange(6 * 6, dtype="float32").reshape(1, 6, 6, 1)
    out = to_numpy(crop(np.repeat(image, 900, axis=0), training=True))
    corner = out[:, 0, 0, 0].astype(int)  # top-left value = 6 * top + left, 3 x 3 positions
    counts = np.bincount(corner, minlength=36)[[6 * t + j for t in range(3) for j in range(3)]]
    assert counts.sum() == 900
    from scipy import stats

    assert stats.chisquare(counts).pvalue > 1e-4


def test_random_crop_seeded_and_validated():
    a = to_numpy(RandomCrop(8, 8, seed=5)(X, training=True))
    b = to_numpy(RandomCrop(8, 8, seed=5)(X, training=True))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="needs images at least that large"):
        RandomCrop(30, 8)(X, training=True)
