"""Image pipelines from a spec: every transform, the noise family, models and errors.

Statistical bounds are K = 5 standard errors derived from the sample size n.
"""

import keras
import numpy as np
import pytest
from scipy import stats

import noisewise
from noisewise.augment import (
    TRANSFORMS,
    AugmentPipeline,
    FastGaussianNoise,
    SensorNoise,
    from_spec,
    image_pipeline,
    validate_spec,
)

BACKEND = keras.backend.backend()
K = 5.0
RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)

# One example entry per image type (tabular_noise is tested in test_tabular.py).
EXAMPLES = {
    "flip": {"mode": "horizontal_and_vertical"},
    "rotate": {"factor": 20, "unit": "degrees"},
    "shift": {"height_factor": 0.2, "width_factor": 0.2},
    "zoom": {"height_factor": 0.3},
    "shear": {"x_factor": 0.2, "y_factor": 0.2},
    "crop": {"height": 12, "width": 10},
    "brightness": {"factor": 0.3},
    "contrast": {"factor": 0.5},
    "color_jitter": {"brightness_factor": 0.2, "contrast_factor": 0.2, "saturation_factor": 0.5,
                     "hue_factor": 0.1},
    "saturation": {"factor": 0.5},
    "hue": {"factor": 0.2},
    "grayscale": {"factor": 1.0},
    "blur": {"factor": 1.0, "kernel_size": 3, "sigma": 1.0},
    "erasing": {"factor": 1.0},
    "randaugment": {"num_ops": 2, "factor": 0.5},
    "mixup": {"alpha": 0.4},
    "cutmix": {"factor": 1.0},
    "gaussian_noise": {"noise_std": 20},
    "uniform_noise": {"amplitude": 20},
    "speckle_noise": {"stddev": 0.3},
    "salt_and_pepper": {"rate": 0.2},
    "shot_noise": {"peak": 20},
    "sensor_noise": {"peak": 20, "read_noise": 3.0},
}


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def test_every_type_has_an_example():
    assert set(EXAMPLES) == set(TRANSFORMS) - {"tabular_noise"}


# The fast run keeps the transforms noisewise implements or rewires; Keras'
# photometric layers, Poisson draws (gamma + binomial) and Beta draws (mixup,
# cutmix) compile slowly on JAX and run with the slow tests (`make test`).
SLOW_TYPES = {"randaugment", "shot_noise", "sensor_noise", "mixup", "cutmix", "color_jitter",
              "saturation", "hue", "grayscale", "blur", "erasing"}


@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=pytest.mark.slow) if k in SLOW_TYPES else k for k in sorted(EXAMPLES)]
)
def test_transform_shape_dtype_range_determinism_and_inference(kind):
    spec = [{"type": kind, **EXAMPLES[kind]}]
    labels = np.eye(2, dtype="float32")[[0, 1, 0, 1]]
    data = {"images": IMAGES, "labels": labels} if kind in ("mixup", "cutmix") else IMAGES
    pipeline = image_pipeline(spec, seed=7)
    out = pipeline.augment(data)  # the compiled data-pipeline path
    images = out["images"] if isinstance(out, dict) else out
    expected = (4, 12, 10, 3) if kind == "crop" else IMAGES.shape
    assert images.shape == expected and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 255.0 + 1e-3
    assert not np.array_equal(images, IMAGES[:, : expected[1], : expected[2]].astype("float32"))
    # Same seed, same output (eager calls; the compiled path is checked in
    # test_chunked_augment_is_deterministic_and_covers_the_batch).
    a, b = (keras.tree.map_structure(to_numpy, image_pipeline(spec, seed=7)(data)) for _ in range(2))
    keras.tree.map_structure(np.testing.assert_array_equal, a, b)
    inference = pipeline(data, training=False)
    inference = to_numpy(inference["images"] if isinstance(inference, dict) else inference)
    if kind == "crop":
        np.testing.assert_array_equal(inference, IMAGES[:, 2:14, 3:13])
    else:
        np.testing.assert_array_equal(inference, IMAGES.astype("float32"))


def test_gaussian_noise_in_pixel_units_then_clipped_to_range():
    """noise_std is in grey levels: std of the noise before clipping equals it."""
    layer = FastGaussianNoise(10.0, clip=(0, 255), seed=0)
    photo = np.stack([_photo()] * 2).astype("float32")
    x = keras.ops.convert_to_tensor(photo)
    params = layer.draw(x)
    raw = to_numpy(x + 10.0 * params["z"]) - photo  # the noise the layer adds before clipping
    n = raw.size
    assert abs(raw.std() - 10.0) < K * 10.0 / np.sqrt(2 * n)  # SE of a sample std: s/sqrt(2n)
    assert abs(raw.mean()) < K * 10.0 / np.sqrt(n)
    out = to_numpy(layer.apply_noise(x, params))
    assert out.min() >= 0.0 and out.max() <= 255.0
    np.testing.assert_allclose(out, np.clip(photo + raw, 0, 255), atol=1e-3)
    assert (out == 0).any() or (out == 255).any()  # the photo has pixels near the ends


def test_gaussian_noise_on_uint8_images_in_grey_levels():
    """uint8 photos, noise_std=10: the added noise has std 10 grey levels before
    clipping, and the default output is the same draw clipped to [0, 255]."""
    photos = np.stack([_photo()] * 4)
    assert photos.dtype == np.uint8
    free = image_pipeline([{"type": "gaussian_noise", "noise_std": 10, "clip": False}],
                          seed=3).augment(photos, chunk_size=3)
    noise = free.astype("float64") - photos
    n = noise.size
    assert abs(noise.std() - 10.0) < K * 10.0 / np.sqrt(2 * n)  # SE of a sample std: s/sqrt(2n)
    assert abs(noise.mean()) < K * 10.0 / np.sqrt(n)
    assert free.min() < 0 or free.max() > 255  # the photo has pixels near 0 or 255
    clipped = image_pipeline([{"type": "gaussian_noise", "noise_std": 10}],
                             seed=3).augment(photos, chunk_size=3)
    assert clipped.min() >= 0.0 and clipped.max() <= 255.0
    np.testing.assert_allclose(clipped, np.clip(free, 0.0, 255.0), atol=1e-4)


def test_augment_leaves_the_callers_tensor_intact():
    """The chunked JAX path overwrites its own intermediates in place, never the input."""
    spec = [{"type": "flip", "mode": "horizontal"}, {"type": "gaussian_noise", "noise_std": 5},
            {"type": "contrast", "factor": 0.2}]
    x = keras.ops.convert_to_tensor(IMAGES.astype("float32"))
    for training in (True, False):
        out = image_pipeline(spec, seed=0).augment(x, training=training, chunk_size=1)
        assert out.shape == IMAGES.shape
        np.testing.assert_array_equal(to_numpy(x), IMAGES.astype("float32"))
    np.testing.assert_array_equal(out, IMAGES.astype("float32"))  # training=False: identity


def test_pipeline_noise_has_gaussian_distribution():
    """End to end through the pipeline's sampler (the fast one on JAX): KS and moments."""
    grey = np.full((8, 64, 64, 3), 128, np.uint8)  # 128 +- 5.5 sigma stays in [0, 255]
    out = image_pipeline([{"type": "gaussian_noise", "noise_std": 10}], seed=1).augment(grey)
    z = ((out - 128.0) / 10.0).ravel().astype("float64")
    n = z.size
    assert abs(z.mean()) < K / np.sqrt(n) and abs(z.var() - 1) < K * np.sqrt(2 / n)
    assert stats.kstest(z, "norm").statistic < np.sqrt(-np.log(1e-4 / 2) / 2) / np.sqrt(n)


def test_noise_clips_to_value_range_by_default_and_can_opt_out():
    white = np.full((2, 8, 8, 3), 250, np.uint8)
    clipped = image_pipeline([{"type": "gaussian_noise", "stddev": 50}], seed=0).augment(white)
    free = image_pipeline([{"type": "gaussian_noise", "stddev": 50, "clip": False}], seed=0).augment(white)
    assert clipped.max() <= 255 and free.max() > 255
    unit = image_pipeline([{"type": "gaussian_noise", "stddev": 0.2}], seed=0,
                          value_range=(0, 1)).augment(white / 255.0)
    assert unit.min() >= 0 and unit.max() <= 1


@pytest.mark.slow
def test_sensor_noise_mean_and_variance():
    """Poisson(u * peak) / peak * 255 + N(0, r^2): mean 255 u, variance 255^2 u / peak + r^2."""
    level, peak, read = 100.0, 50.0, 3.0
    layer = SensorNoise(peak, read_noise=read, value_range=(0, 255), seed=0)
    x = np.full((4, 64, 64, 3), level, "float32")
    y = to_numpy(layer(x, training=True)).astype("float64").ravel()
    n = y.size
    var = 255.0**2 * (level / 255.0) / peak + read**2
    assert abs(y.mean() - level) < K * np.sqrt(var / n)
    # SE of a sample variance: sqrt((mu4 - var^2) / n), mu4 of a near-Gaussian ~ 3 var^2.
    assert abs(y.var() - var) < K * np.sqrt(2 * var**2 / n) * 1.5
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)


def test_pipeline_in_a_model_trains_and_is_identity_at_inference():
    spec = [{"type": "flip", "mode": "horizontal"}, {"type": "rotate", "factor": 15, "unit": "degrees"},
            {"type": "gaussian_noise", "noise_std": 10}]
    inputs = keras.Input((16, 16, 3))
    flat = keras.layers.Flatten()(from_spec(spec, seed=0)(inputs))
    model = keras.Model(inputs, flat)
    np.testing.assert_allclose(model.predict(IMAGES, verbose=0),
                               IMAGES.reshape(4, -1).astype("float32"))
    head = keras.Sequential([keras.Input((16, 16, 3)), from_spec(spec, seed=0),
                             keras.layers.Flatten(), keras.layers.Dense(2)])
    head.compile("adam", "sparse_categorical_crossentropy")
    history = head.fit(IMAGES, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    if BACKEND == "jax":
        assert head.jit_compile  # no layer switched XLA off


def test_model_with_pipeline_saves_and_loads(tmp_path):
    spec = [{"type": "rotate", "factor": 0.1, "unit": "fraction"}, {"type": "sensor_noise", "peak": 30}]
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, from_spec(spec, seed=2)(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    pipeline = loaded.layers[-1]
    assert isinstance(pipeline, AugmentPipeline) and pipeline.spec == spec
    np.testing.assert_array_equal(loaded.predict(IMAGES, verbose=0), IMAGES.astype("float32"))


def test_config_round_trip_replays_the_same_augmentation():
    pipeline = image_pipeline([{"type": "flip", "mode": "horizontal"},
                               {"type": "gaussian_noise", "noise_std": 5}], seed=4)
    clone = AugmentPipeline.from_config(pipeline.get_config())
    np.testing.assert_array_equal(clone.augment(IMAGES), pipeline.augment(IMAGES))


def test_chunked_augment_is_deterministic_and_covers_the_batch():
    spec = [{"type": "gaussian_noise", "noise_std": 10}]
    grey = np.full((10, 8, 8, 3), 128, np.uint8)
    a = image_pipeline(spec, seed=0).augment(grey, chunk_size=3)
    b = image_pipeline(spec, seed=0).augment(grey, chunk_size=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == grey.shape and not np.array_equal(a[0], a[9])  # no chunk repeats noise
    assert all(not np.array_equal(a[i], a[i + 3]) for i in range(7))


def test_mixup_mixes_labels_with_images():
    labels = np.eye(2, dtype="float32")[[0, 1, 0, 1]]
    out = image_pipeline([{"type": "mixup", "alpha": 1.0}], seed=0).augment(
        {"images": IMAGES, "labels": labels})
    np.testing.assert_allclose(out["labels"].sum(axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(out["labels"], labels)


def test_spec_errors_name_the_entry_and_what_is_allowed():
    cases = [
        ([{"type": "sharpen"}], r"augment\[0\]\.type: unknown transform 'sharpen'; allowed: blur,"),
        ([{"type": "flip", "foo": 1}], r"augment\[0\]: unknown key\(s\) 'foo' for type 'flip'"),
        ([{"mode": "horizontal"}], r"augment\[0\]: each entry must be a dict with a 'type'"),
        ([{"type": "rotate", "factor": 15}], r"augment\[0\]\.unit: rotate needs `unit`"),
        ([{"type": "flip"}, {"type": "gaussian_noise", "stddev": 1, "noise_std": 2}],
         r"augment\[1\]: give `stddev` or its alias `noise_std`"),
        ([{"type": "gaussian_noise", "stddev": -1}], r"augment\[0\] \(gaussian_noise\): `stddev` must be"),
        ([{"type": "brightness", "factor": 5}], r"augment\[0\] \(brightness\):.*factor"),
        ([{"type": "mixup"}], r"augment\[0\]\.type: 'mixup' mixes labels"),
    ]
    for spec, message in cases:
        with pytest.raises(ValueError, match=message):
            from_spec(spec)
    with pytest.raises(ValueError, match="needs the pipeline's `value_range`"):
        from_spec([{"type": "contrast", "factor": 0.2}], value_range=None)
    with pytest.raises(ValueError, match="`spec` must be a list of dicts"):
        image_pipeline({"type": "flip"})


def test_validate_spec_returns_a_copy():
    spec = [{"type": "zoom", "height_factor": 0.1}]
    checked = validate_spec(spec)
    assert checked == spec and checked is not spec and checked[0] is not spec[0]


def test_exposed_from_package_root():
    assert noisewise.augment.image_pipeline is image_pipeline


def _photo():
    from sklearn.datasets import load_sample_images

    return load_sample_images().images[0][::8, ::8]
