"""The GAN's training step, instance noise and label smoothing, and the ring-of-Gaussians scores.

Losses are checked against closed forms: a discriminator with a zero kernel
outputs one logit ``c`` for every input, so with a zero learning rate the
logged losses must be the cross-entropies of ``sigmoid(c)``.
"""

import math

import keras
import numpy as np
import pytest

from noisewise import NoiseScheduler, schedules
from noisewise.gan import GAN, mode_coverage, ring_of_gaussians

LATENT = 3


def mlp(inputs, outputs, hidden=16, activation=None, seed=0):
    net = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(hidden, "relu"),
                            keras.layers.Dense(outputs, activation=activation)])
    rng = np.random.default_rng(seed)
    net.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in net.get_weights()])
    return net


def constant(inputs, outputs, value, activation=None):
    """A dense layer with a zero kernel: outputs ``value`` whatever the input."""
    net = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(outputs, activation=activation)])
    net.set_weights([np.zeros((inputs, outputs), "float32"), np.full(outputs, value, "float32")])
    return net


def sgd(lr):
    return keras.optimizers.SGD(learning_rate=lr)


def softplus(x):
    return math.log1p(math.exp(x))


# -- mode coverage ---------------------------------------------------------------
def test_all_modes_of_the_ring_are_covered_with_the_gaussian_share_of_high_quality():
    x, centers = ring_of_gaussians(4000, std=0.02, seed=0)
    cover = mode_coverage(x, centers, 0.02)
    assert cover.modes == 8 and cover.counts.sum() == round(cover.high_quality * 4000)
    p = 1.0 - math.exp(-4.5)  # P(chi2 with 2 dof <= 3**2): within 3 std in 2-D
    assert abs(cover.high_quality - p) < 4 * math.sqrt(p * (1 - p) / 4000)


def test_only_the_modes_sampled_are_counted():
    _, centers = ring_of_gaussians(1, seed=0)
    rng = np.random.default_rng(1)
    x = centers[rng.choice([0, 3, 5], size=600)] + 0.01 * rng.standard_normal((600, 2))
    cover = mode_coverage(x, centers, 0.02)
    assert cover.modes == 3 and cover.high_quality == 1.0
    assert set(np.flatnonzero(cover.counts)) == {0, 3, 5} and cover.counts.sum() == 600


def test_off_mode_samples_are_not_high_quality_and_cover_nothing():
    _, centers = ring_of_gaussians(1, seed=0)
    angles = 2 * np.pi * (np.arange(8) + 0.5) / 8  # halfway between modes, on the circle
    between = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    inside = np.zeros((8, 2))  # the centre of the ring
    off = np.concatenate([between, inside] * 15)  # 240 samples
    cover = mode_coverage(off, centers, 0.02)
    assert cover.modes == 0 and cover.high_quality == 0.0 and cover.counts.sum() == 0
    on = np.repeat(centers[:1], 80, axis=0)
    cover = mode_coverage(np.concatenate([on, off]), centers, 0.02)
    assert cover.modes == 1 and cover.high_quality == pytest.approx(80 / 320)
    # A ball wide enough takes the between-mode points too (distance 2*2*sin(pi/16) = 0.78),
    # each counted once, for one of its two nearest modes.
    wide = mode_coverage(between, centers, 0.02, k=40)
    assert wide.high_quality == 1.0 and wide.counts.sum() == 8 and 4 <= wide.modes <= 8


def test_a_mode_needs_the_threshold_of_samples():
    _, centers = ring_of_gaussians(1, seed=0)
    x = np.concatenate([np.repeat(centers[:1], 99, axis=0), centers[2:3]])
    assert mode_coverage(x, centers, 0.02).modes == 2
    assert mode_coverage(x, centers, 0.02, min_count=2).modes == 1
    assert mode_coverage(x, centers, 0.02, min_fraction=0.05).modes == 1
    assert mode_coverage(x, centers, 0.02, min_fraction=0.01).modes == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"std": 0.0}, "`std` must be in (0.0"),
    ({"k": -1.0}, "`k` must be in (0.0"),
    ({"min_count": 0}, "`min_count` must be >= 1. Received: min_count=0"),
    ({"min_fraction": 1.5}, "`min_fraction` must be in (0.0, 1.0]"),
])
def test_mode_coverage_refuses_bad_arguments(kwargs, message):
    x, centers = ring_of_gaussians(10, seed=0)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[").replace("]", r"\]")):
        mode_coverage(x, centers, **{"std": 0.02, **kwargs})
    with pytest.raises(ValueError, match=r"samples shape=\(10, 2\), centers shape=\(8, 3\)"):
        mode_coverage(x, np.zeros((8, 3)), 0.02)
    with pytest.raises(ValueError, match="must be finite"):
        mode_coverage(np.full((3, 2), np.nan), centers, 0.02)


# -- the ring sampler ----------------------------------------------------------------
def test_ring_sampler_moments_and_centres():
    n, radius, std = 40000, 2.0, 0.05
    x, centers = ring_of_gaussians(n, radius=radius, std=std, seed=3)
    assert x.shape == (n, 2) and x.dtype == np.float32 and centers.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), radius, rtol=1e-6)
    np.testing.assert_allclose(np.arctan2(centers[:, 1], centers[:, 0]) % (2 * np.pi),
                               2 * np.pi * np.arange(8) / 8, atol=1e-6)
    second = radius ** 2 / 2 + std ** 2  # E[x_j^2] per coordinate; the mean is 0
    assert np.all(np.abs(x.mean(axis=0)) < 4 * math.sqrt(second / n))
    np.testing.assert_allclose((x.astype("float64") ** 2).mean(axis=0), second, rtol=0.02)
    nearest = np.argmin(np.linalg.norm(x[:, None] - centers[None], axis=-1), axis=1)
    share = np.bincount(nearest, minlength=8) / n
    assert np.all(np.abs(share - 1 / 8) < 4 * math.sqrt((1 / 8) * (7 / 8) / n))
    residual = (x - centers[nearest]).astype("float64")
    np.testing.assert_allclose(residual.std(axis=0), std, rtol=0.03)
    again, _ = ring_of_gaussians(n, radius=radius, std=std, seed=3)
    np.testing.assert_array_equal(x, again)
    assert not np.array_equal(x, ring_of_gaussians(n, radius=radius, std=std, seed=4)[0])
    with pytest.raises(ValueError, match="`modes` must be >= 1. Received: modes=0"):
        ring_of_gaussians(5, modes=0, seed=0)


# -- construction ------------------------------------------------------------------------
def test_shape_mismatches_are_refused_naming_both_shapes():
    with pytest.raises(ValueError, match=r"output shape \(None, 3\) does not match the discriminator's "
                                         r"input shape \(None, 2\)"):
        GAN(mlp(LATENT, 3), mlp(2, 1), latent_dim=LATENT)
    with pytest.raises(ValueError, match=r"one unit per example.*Received: discriminator output shape=\(None, 2\)"):
        GAN(mlp(LATENT, 2), mlp(2, 2), latent_dim=LATENT)
    with pytest.raises(ValueError, match=r"latent vectors of shape \(None, 5\)"):
        GAN(mlp(LATENT, 2), mlp(2, 1), latent_dim=5)
    with pytest.raises(ValueError, match=r"`label_smoothing` must be in \[0.0, 1.0\). Received: label_smoothing=1.0"):
        GAN(mlp(LATENT, 2), mlp(2, 1), latent_dim=LATENT, label_smoothing=1.0)
    with pytest.raises(ValueError, match="`instance_noise` must be in"):
        GAN(mlp(LATENT, 2), mlp(2, 1), latent_dim=LATENT, instance_noise=-0.1)


def test_compile_refuses_a_shared_optimizer_and_an_unknown_output():
    gan = GAN(mlp(LATENT, 2), mlp(2, 1), latent_dim=LATENT)
    adam = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="two optimizer instances"):
        gan.compile(adam, adam)
    gan = GAN(mlp(LATENT, 2), mlp(2, 1, activation="tanh"), latent_dim=LATENT)
    with pytest.raises(ValueError, match="last activation 'tanh'.*from_logits=True"):
        gan.compile(sgd(0.1), sgd(0.1))


# -- instance noise ----------------------------------------------------------------------
def test_the_discriminator_input_gets_noise_of_the_set_stddev():
    gan = GAN(mlp(LATENT, 2), mlp(2, 1), latent_dim=LATENT, instance_noise=0.5, seed=1)
    x = np.tile(np.array([[1.0, -2.0]], "float32"), (20000, 1))
    n = x.size
    for level in (0.5, 0.2):
        gan.set_level(level)
        assert gan.get_level() == pytest.approx(level)
        noise = np.asarray(keras.ops.convert_to_numpy(gan.noisy(x)), "float64") - x
        assert abs(noise.mean()) < 4 * level / math.sqrt(n)
        assert abs(noise.std() / level - 1) < 4 / math.sqrt(2 * n)  # sd of a sample sd ~ sigma/sqrt(2n)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(gan.noisy(x, training=False)), x)
    gan.set_level(0.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(gan.noisy(x)), x)
    with pytest.raises(ValueError, match="Received: stddev=-1.0"):
        gan.set_level(-1.0)


@pytest.mark.parametrize("activation", [None, "sigmoid"])
def test_logged_losses_are_the_smoothed_and_non_saturating_formulas(activation):
    c, s = 0.7, 0.2
    p = 1 / (1 + math.exp(-c))
    gan = GAN(mlp(LATENT, 2), constant(2, 1, c, activation), latent_dim=LATENT,
              instance_noise=0.3, label_smoothing=s, seed=0)
    gan.compile(sgd(0.0), sgd(0.0))
    logs = gan.fit(np.ones((16, 2), "float32"), batch_size=16, epochs=1, verbose=0).history
    d_loss = -((1 - s) * math.log(p) + s * math.log(1 - p)) - math.log(1 - p)
    assert logs["d_loss"][0] == pytest.approx(d_loss, rel=1e-5)
    assert logs["g_loss"][0] == pytest.approx(softplus(-c), rel=1e-5)  # -log D(G(z))


# -- training ----------------------------------------------------------------------------
def trained(seed, steps=1, lr=0.05):
    gan = GAN(mlp(LATENT, 2, seed=1), mlp(2, 1, seed=2), latent_dim=LATENT,
              instance_noise=0.2, label_smoothing=0.1, seed=seed)
    gan.compile(keras.optimizers.Adam(lr), keras.optimizers.Adam(lr))
    before = [w.copy() for w in gan.generator.get_weights() + gan.discriminator.get_weights()]
    states = [np.array(keras.ops.convert_to_numpy(g.state)) for g in
              (gan.seed_generator, gan.instance_noise_layer.seed_generator)]
    x, _ = ring_of_gaussians(32 * steps, seed=0)
    gan.fit(x, batch_size=32, epochs=1, verbose=0, shuffle=False)
    return gan, before, states


def test_one_step_updates_both_networks_and_replays_from_the_seed():
    gan, before, states = trained(seed=7)
    after = gan.generator.get_weights() + gan.discriminator.get_weights()
    n_g = len(gan.generator.get_weights())
    assert all(not np.allclose(a, b) for a, b in zip(after, before))  # every weight of both nets moved
    assert int(keras.ops.convert_to_numpy(gan.d_optimizer.iterations)) == 1
    assert int(keras.ops.convert_to_numpy(gan.g_optimizer.iterations)) == 1
    # The seed states advanced (on JAX they are threaded through the compiled step).
    for old, new in zip(states, (gan.seed_generator, gan.instance_noise_layer.seed_generator)):
        assert not np.array_equal(old, keras.ops.convert_to_numpy(new.state))
    twin, _, _ = trained(seed=7)
    for a, b in zip(after, twin.generator.get_weights() + twin.discriminator.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    other, _, _ = trained(seed=8)
    moved = other.generator.get_weights()[:n_g]
    assert not all(np.allclose(a, b) for a, b in zip(after[:n_g], moved))
    np.testing.assert_array_equal(gan.generate(6, seed=3), gan.generate(6, seed=3))
    assert not np.allclose(gan.generate(6, seed=3), gan.generate(6, seed=4))
    assert gan.generate(6).shape == (6, 2)


def test_a_step_schedule_anneals_the_noise_the_step_uses():
    # Real data and generated samples are all 0 and the discriminator's logit
    # is the first coordinate, so without noise d_loss is 2 log 2 exactly and
    # with noise it is larger (E softplus(sigma z) > log 2).
    generator = constant(LATENT, 2, 0.0)
    discriminator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    discriminator.set_weights([np.array([[1.0], [0.0]], "float32"), np.zeros(1, "float32")])
    gan = GAN(generator, discriminator, latent_dim=LATENT, instance_noise=3.0, seed=0)
    gan.compile(sgd(0.0), sgd(0.0))
    means = []
    recorder = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: means.append(float(logs["d_loss"])))
    scheduler = NoiseScheduler(schedules.linear(3.0, 0.0, steps=2), layers=[gan], by="step")
    history = gan.fit(np.zeros((256, 2), "float32"), batch_size=64, epochs=1, verbose=0,
                      callbacks=[scheduler, recorder])
    per_step = [means[0]] + [(k + 1) * means[k] - k * means[k - 1] for k in range(1, len(means))]
    assert per_step[0] > 2 * math.log(2) + 0.5 and per_step[1] > 2 * math.log(2) + 0.2
    np.testing.assert_allclose(per_step[2:], 2 * math.log(2), rtol=1e-5)
    assert gan.get_level() == 0.0 and history.history["noise_level"] == [0.0]
    # Without `layers`, the scheduler finds the instance-noise sublayer.
    gan.fit(np.zeros((64, 2), "float32"), batch_size=64, epochs=1, verbose=0,
            callbacks=[NoiseScheduler(schedules.constant(0.25))])
    assert gan.get_level() == 0.25


@pytest.mark.slow
def test_a_short_training_on_the_ring_covers_several_modes():
    keras.utils.set_random_seed(0)

    def net(i, o):
        return keras.Sequential([keras.Input((i,)), keras.layers.Dense(64, "relu"),
                                 keras.layers.Dense(64, "relu"), keras.layers.Dense(o)])

    gan = GAN(net(4, 2), net(2, 1), latent_dim=4, instance_noise=0.05, seed=0)
    gan.compile(keras.optimizers.Adam(2e-3, beta_1=0.5), keras.optimizers.Adam(2e-3, beta_1=0.5))
    x, centers = ring_of_gaussians(128 * 300, seed=0)
    gan.fit(x, batch_size=128, epochs=1, verbose=0)
    samples = gan.generate(2500, seed=1)
    assert mode_coverage(samples, centers, 0.02).modes > 1
    assert 1.5 < np.median(np.linalg.norm(samples, axis=1)) < 2.5  # on the ring, not collapsed to its centre


def test_config_round_trip():
    gan = GAN(mlp(LATENT, 2), mlp(2, 1), latent_dim=LATENT, instance_noise=0.3, label_smoothing=0.1, seed=4)
    clone = GAN.from_config(gan.get_config())
    assert (clone.latent_dim, clone.get_level(), clone.label_smoothing, clone.seed) == (LATENT, pytest.approx(0.3),
                                                                                         0.1, 4)
