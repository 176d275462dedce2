"""Training with input noise is ridge regression (Bishop 1995), checked end to end.

Bishop (1995), "Training with noise is equivalent to Tikhonov regularization",
Neural Computation 7(1). For a linear model y_hat = w.(x + e) + b with
e ~ N(0, s^2 I), the expected squared error of one sample is

    E_e[(y - w.(x + e) - b)^2] = (y - w.x - b)^2 + s^2 |w|^2,

so training under MSE with fresh noise at every step minimises
mean_i (y_i - w.x_i - b)^2 + s^2 |w|^2: ridge with an unpenalised intercept.
Setting the gradient in b to zero gives b = mean(y) - mean(x).w; substituting it
centres the data (Xc = X - mean(X), yc = y - mean(y)) and the gradient in w gives

    (Xc^T Xc / n + s^2 I) w = Xc^T yc / n.
"""

import keras
import numpy as np
import pytest
import scipy.linalg

from noisewise.layers import GaussianNoise

N, D, NOISE_STD = 1024, 3, 1.0
BATCH, EPOCHS, PEAK_LR = 64, 30, 0.05


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    # Unequal feature scales: ridge shrinks each direction by var / (var + s^2)
    # (0.5, 0.2, 0.8 here), so it points away from OLS, not just shorter.
    x = rng.normal(size=(N, D)) * np.array([1.0, 0.5, 2.0]) + np.array([0.5, -1.0, 2.0])
    y = x @ np.array([2.0, -3.0, 1.0]) + 0.7 + 0.3 * rng.normal(size=N)
    return x, y


def least_squares(x, y, s):
    """(w, b) minimising mean (y - x.w - b)^2 + s^2 |w|^2 (s = 0: OLS)."""
    xc, yc = x - x.mean(0), y - y.mean()
    w = np.linalg.solve(xc.T @ xc / len(x) + s**2 * np.eye(x.shape[1]), xc.T @ yc / len(x))
    return np.append(w, y.mean() - x.mean(0) @ w)


def sgd_spread(x, y, theta, s, lr, batch, seed=0, draws=64):
    """Expected distance of constant-rate SGD from the minimiser ``theta`` = (w, b).

    Near a minimum with Hessian H, SGD with step lr and batch B fluctuates with a
    covariance S solving H S + S H = (lr / B) C, where C is the covariance of
    one sample's gradient (Mandt, Hoffman and Blei 2017, "Stochastic gradient
    descent as approximate Bayesian inference"). C is estimated here over
    ``draws`` noise draws per sample. Returns sqrt(trace S).
    """
    rng = np.random.default_rng(seed)
    n, d = x.shape
    xs = np.repeat(x, draws, axis=0)
    noisy = np.hstack([xs + s * rng.normal(size=xs.shape), np.ones((len(xs), 1))])
    residual = np.repeat(y, draws) - noisy @ theta
    grads = -2.0 * residual[:, None] * noisy
    c = np.cov(grads, rowvar=False)
    ones = np.hstack([x, np.ones((n, 1))])
    h = 2.0 * (ones.T @ ones / n + s**2 * np.diag([1.0] * d + [0.0]))
    cov = scipy.linalg.solve_sylvester(h, h, lr / batch * c)
    return float(np.sqrt(np.trace(cov)))


@pytest.mark.slow
def test_input_noise_training_converges_to_ridge_not_ols():
    x, y = make_data()
    ridge = least_squares(x, y, NOISE_STD)
    ols = least_squares(x, y, 0.0)
    gap = np.linalg.norm(ridge - ols)

    keras.utils.set_random_seed(0)  # shuffling
    dense = keras.layers.Dense(1, kernel_initializer="zeros")
    model = keras.Sequential([keras.Input((D,)), GaussianNoise(NOISE_STD, seed=0), dense])
    steps = EPOCHS * (N // BATCH)
    lr = keras.optimizers.schedules.CosineDecay(PEAK_LR, steps)
    model.compile(keras.optimizers.SGD(lr), "mse")
    model.fit(x.astype("float32"), y[:, None].astype("float32"), epochs=EPOCHS, batch_size=BATCH, verbose=0)
    theta = np.append(keras.ops.convert_to_numpy(dense.kernel)[:, 0], keras.ops.convert_to_numpy(dense.bias))

    # Tolerance: the spread of SGD around the minimiser at the *peak* rate
    # (0.12 here). The cosine decay to 0 only shrinks it (measured distances
    # 0.015-0.056 over 4 seeds on each backend), and it is a small fraction of
    # the ridge-OLS gap (4.1, of which 3.1 in the intercept), so OLS cannot pass.
    tolerance = sgd_spread(x, y, ridge, NOISE_STD, PEAK_LR, BATCH)
    assert tolerance < 0.1 * gap
    to_ridge, to_ols = np.linalg.norm(theta - ridge), np.linalg.norm(theta - ols)
    assert to_ridge < tolerance, (theta, ridge, tolerance)
    assert to_ols > gap - tolerance
    # The intercept is not shrunk: it matches ridge's mean(y) - mean(x).w, not OLS'.
    assert abs(theta[-1] - ridge[-1]) < tolerance < abs(ridge[-1] - ols[-1])
