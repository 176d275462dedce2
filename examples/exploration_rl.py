"""Which exploration helps a DQN on CartPole: epsilon-greedy, a NoisyDense head, or parameter noise?

CartPole-v1's dynamics (Barto, Sutton and Anderson 1983; the equations,
thresholds and 500-step cap of gymnasium's ``CartPole-v1``) are written here
in NumPy, vectorised over the replicas of a method. Each method trains one
DQN per seed (a 4-64-64-2 Keras MLP, the original DQN target with a Huber
loss, Adam, a target network copied every ``TARGET_EVERY`` steps, a replay
buffer, one update of a batch of 64 per environment step from step ``START``
on, the same step budget for every run):

* ``epsilon_greedy``: a random action with probability epsilon, decayed
  linearly from 1 to 0.02 over the first quarter of the step budget;
* ``noisy_dense``: the last two layers are :class:`noisewise.layers.NoisyDense`
  (factorised, sigma0 = 0.5; Fortunato et al. 2018), a fresh draw at every
  action and update, no epsilon;
* ``parameter_noise``: :class:`noisewise.exploration.ParameterNoise`
  (Plappert et al. 2018): the acting network is a perturbed copy of the
  online one, resampled at each episode's start; every 50 steps the scale is
  adapted so that the KL divergence between the two greedy policies' softmaxes
  on 128 replayed states (:func:`dqn_distance`) matches what epsilon-greedy at
  the same step would give (:func:`dqn_threshold`), no epsilon.

Replica i has the same seed in every method (the same initial weights of the
layers they share, environment starts and replay draws), so methods are
compared paired. The replicas of a method train together under ``jax.vmap``
(one compiled update per step for all seeds), which makes the recipe JAX-only;
it runs the training loop itself rather than through a study's executor and
store (an RL run has no dataset or ``fit``), and uses
``noisewise.study.stats`` for the intervals and paired tests.

Answers: episodes to solve (the first training episode whose 20-episode
moving average of returns is >= 195; a run that never gets there within the
budget is censored, shown as ">E" with E its episode count, and counted as
slower than every solved run in the exact sign test against epsilon-greedy).
Training episodes explore: epsilon falls to 0.02 by a quarter of the budget,
while NoisyDense and parameter noise keep exploring as long as their noise
does, so this answer also measures how much a method still explores. Then
the greedy return (noise off, mean of 5 evaluation episodes) after training,
with a paired 95% interval, t-test and Wilcoxon test against epsilon-greedy;
and return curves (mean and 95% band over seeds, against environment steps),
drawn to ``--out``/exploration_returns.png if matplotlib is installed.

    python examples/exploration_rl.py                # 10 seeds, 20,000 steps per run
    python examples/exploration_rl.py --quick        # 2 seeds, 1,500 steps (CI)
"""

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import binomtest  # noqa: E402

from noisewise.exploration import ParameterNoise, dqn_distance, dqn_threshold  # noqa: E402
from noisewise.layers import NoisyDense  # noqa: E402
from noisewise.random import derive_seed, replica_seed  # noqa: E402
from noisewise.study.stats import estimate, paired_pvalues  # noqa: E402

METHODS = ("epsilon_greedy", "noisy_dense", "parameter_noise")
GAMMA, BATCH, LR, TARGET_EVERY, START, BUFFER = 0.99, 64, 5e-4, 250, 500, 50_000
SOLVED, WINDOW, EVAL_EPISODES = 195.0, 20, 5


# ------------------------------------------------------------------ CartPole-v1 in NumPy
class CartPole:
    """CartPole-v1 environments, one per seed, stepped together (gymnasium's equations and limits)."""

    GRAVITY, CART, POLE, LENGTH, FORCE, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    X_LIMIT, THETA_LIMIT, MAX_STEPS = 2.4, 12 * 2 * math.pi / 360, 500

    def __init__(self, seeds):
        # One generator per environment: its k-th episode starts in the same state in every method.
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self.state = np.zeros((len(seeds), 4))
        self.steps = np.zeros(len(seeds), int)
        self.reset(np.ones(len(seeds), bool))

    def reset(self, which):
        for i in np.flatnonzero(which):
            self.state[i] = self.rngs[i].uniform(-0.05, 0.05, 4)
        self.steps[which] = 0

    def step(self, action):
        """Advance every environment; returns (next state, terminated, truncated), reward 1 each."""
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(action == 1, self.FORCE, -self.FORCE)
        cos, sin = np.cos(theta), np.sin(theta)
        total, pole_ml = self.CART + self.POLE, self.POLE * self.LENGTH
        temp = (force + pole_ml * theta_dot**2 * sin) / total
        theta_acc = (self.GRAVITY * sin - cos * temp) / (
            self.LENGTH * (4.0 / 3.0 - self.POLE * cos**2 / total))
        x_acc = temp - pole_ml * theta_acc * cos / total
        # Explicit Euler, in gymnasium's order.
        self.state = np.stack([x + self.TAU * x_dot, x_dot + self.TAU * x_acc,
                               theta + self.TAU * theta_dot, theta_dot + self.TAU * theta_acc], 1)
        self.steps += 1
        terminated = (np.abs(self.state[:, 0]) > self.X_LIMIT) | (np.abs(self.state[:, 2]) > self.THETA_LIMIT)
        truncated = ~terminated & (self.steps >= self.MAX_STEPS)
        return self.state.copy(), terminated, truncated


# ------------------------------------------------------------------ the Q-network, vectorised
def q_network(method, seed):
    def init(part):
        return keras.initializers.GlorotUniform(seed=derive_seed(seed, part))

    inputs = keras.Input((4,))
    h = keras.layers.Dense(64, activation="relu", kernel_initializer=init("h1"))(inputs)
    if method == "noisy_dense":
        h = NoisyDense(64, activation="relu", seed=derive_seed(seed, "h2"))(h)
        q = NoisyDense(2, seed=derive_seed(seed, "q"))(h)
    else:
        h = keras.layers.Dense(64, activation="relu", kernel_initializer=init("h2"))(h)
        q = keras.layers.Dense(2, kernel_initializer=init("q"))(h)
    return keras.Model(inputs, q)


class Agents:
    """One DQN per seed, trained together: stacked variables, ``jax.vmap`` over the replicas."""

    def __init__(self, method, seeds):
        import jax  # the recipe is JAX-only; keras chose the backend above

        models = [q_network(method, s) for s in seeds]
        self.model = model = models[0]
        self.optimizer = keras.optimizers.Adam(LR)
        self.optimizer.build(model.trainable_variables)
        stack = lambda vs: [np.stack(v) for v in zip(*vs)]  # noqa: E731
        self.tv = stack([[v.numpy() for v in m.trainable_variables] for m in models])
        self.ntv = stack([[v.numpy() for v in m.non_trainable_variables] for m in models])
        self.ov = stack([[v.numpy() for v in self.optimizer.variables] for _ in models])
        self.target = list(self.tv)
        noisy = method == "noisy_dense"

        def q_values(tv, ntv, obs, training):
            return model.stateless_call(tv, ntv, obs, training=training)

        def loss(tv, ntv, target, batch):
            s, a, r, s2, done = batch
            q, ntv = q_values(tv, ntv, s, noisy)
            q2, ntv = q_values(target, ntv, s2, noisy)
            y = r + GAMMA * (1.0 - done) * jax.lax.stop_gradient(q2.max(-1))
            err = jax.numpy.take_along_axis(q, a[:, None], 1)[:, 0] - y
            huber = jax.numpy.where(abs(err) < 1, 0.5 * err**2, abs(err) - 0.5)
            return huber.mean(), ntv

        def step(tv, ntv, ov, target, act_tv, obs, batch, learn):
            # Act with the weights before this step's update, then update (if learning).
            q, ntv = q_values(act_tv, ntv, obs[None], noisy)
            (value, new_ntv), grads = jax.value_and_grad(loss, has_aux=True)(tv, ntv, target, batch)
            new_tv, new_ov = self.optimizer.stateless_apply(ov, grads, tv)
            keep = lambda new, old: jax.tree.map(  # noqa: E731
                lambda n, o: jax.numpy.where(learn, n, o), new, old)
            return q[0].argmax(), keep(new_tv, tv), new_ntv, keep(new_ov, ov), value

        self._step = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, 0, 0, 0, 0, None)))
        self._q = jax.jit(jax.vmap(lambda tv, ntv, obs: q_values(tv, ntv, obs, False)[0]))

    def step(self, act_tv, obs, batch, learn):
        action, self.tv, self.ntv, self.ov, loss = self._step(
            self.tv, self.ntv, self.ov, self.target, act_tv, obs, batch, learn)
        return np.asarray(action)

    def q(self, tv, obs):
        return np.asarray(self._q(tv, self.ntv, obs))

    def weights(self, r):
        return [np.asarray(w[r]) for w in self.tv]


def epsilon(t, decay):
    return max(0.02, 1.0 - 0.98 * t / decay)


# ------------------------------------------------------------------ one method, all seeds
def train(method, seeds, steps, decay):
    """Per-seed episode returns (and the steps at which they ended) and greedy evaluation returns."""
    r_count = len(seeds)
    agents = Agents(method, seeds)
    env = CartPole([derive_seed(s, "env") for s in seeds])
    # Separate streams, so replica i draws the same replay indices in every method.
    rng = [np.random.default_rng(derive_seed(s, "replay")) for s in seeds]
    explore_rng = [np.random.default_rng(derive_seed(s, "explore")) for s in seeds]
    buf = {"s": np.zeros((r_count, BUFFER, 4), "float32"), "a": np.zeros((r_count, BUFFER), "int32"),
           "r": np.ones((r_count, BUFFER), "float32"), "s2": np.zeros((r_count, BUFFER, 4), "float32"),
           "d": np.zeros((r_count, BUFFER), "float32")}
    param = [ParameterNoise(0.05, desired_distance=dqn_threshold(1.0, 2), seed=derive_seed(s, "param"))
             for s in seeds] if method == "parameter_noise" else None
    act_tv = [np.array(w) for w in agents.tv]

    def perturb(which):
        for r in np.flatnonzero(which):
            for w, p in zip(act_tv, param[r].perturb_weights(agents.weights(r))):
                w[r] = p

    if param:
        perturb(np.ones(r_count, bool))
    returns = [[] for _ in seeds]
    ends = [[] for _ in seeds]
    length = np.zeros(r_count, int)
    obs = env.state.astype("float32")
    rows = np.arange(r_count)[:, None]
    for t in range(steps):
        n = min(t, BUFFER)
        idx = np.stack([g.integers(0, max(n, 1), BATCH) for g in rng])
        batch = tuple(buf[k][rows, idx] for k in ("s", "a", "r", "s2", "d"))
        action = agents.step(act_tv if param else agents.tv, obs, batch, t >= START)
        if method == "epsilon_greedy":
            explore = np.array([g.random() < epsilon(t, decay) for g in explore_rng])
            action = np.where(explore, [g.integers(2) for g in explore_rng], action)
        nxt, terminated, truncated = env.step(action)
        slot = t % BUFFER
        for k, v in (("s", obs), ("a", action), ("s2", nxt), ("d", terminated)):
            buf[k][:, slot] = v
        length += 1
        over = terminated | truncated
        for r in np.flatnonzero(over):
            returns[r].append(float(length[r]))
            ends[r].append(t + 1)
        length[over] = 0
        env.reset(over)
        obs = env.state.astype("float32")
        if param and over.any():
            perturb(over)
        if param and t >= START and t % 50 == 0:
            states = buf["s"][rows, np.stack([g.integers(0, n, 128) for g in explore_rng])]
            trial = [param[r].perturb_weights(agents.weights(r)) for r in range(r_count)]
            trial = [np.stack(ws) for ws in zip(*trial)]
            q, qp = agents.q(agents.tv, states), agents.q(trial, states)
            for r in range(r_count):
                param[r].desired_distance = dqn_threshold(epsilon(t, decay), 2)
                param[r].adapt(dqn_distance(q[r], qp[r]))
        if (t + 1) % TARGET_EVERY == 0:
            agents.target = list(agents.tv)
    return returns, ends, evaluate(agents, seeds)


def evaluate(agents, seeds):
    """Mean greedy return (noise off, epsilon 0) of ``EVAL_EPISODES`` episodes per seed."""
    r_count = len(seeds)
    env = CartPole([derive_seed(s, "eval", k) for s in seeds for k in range(EVAL_EPISODES)])
    total = np.zeros(r_count * EVAL_EPISODES)
    alive = np.ones(r_count * EVAL_EPISODES, bool)
    while alive.any():
        obs = env.state.astype("float32").reshape(r_count, EVAL_EPISODES, 4)
        action = agents.q(agents.tv, obs).argmax(-1).ravel()
        _, terminated, truncated = env.step(action)
        total += alive
        alive &= ~(terminated | truncated)
    return total.reshape(r_count, EVAL_EPISODES).mean(1)


# ------------------------------------------------------------------ answers
def episodes_to_solve(returns):
    """First episode (1-based) whose ``WINDOW``-episode moving average is >= ``SOLVED``, else None."""
    x = np.asarray(returns)
    if x.size < WINDOW:
        return None
    avg = np.convolve(x, np.ones(WINDOW) / WINDOW, "valid")
    hit = np.flatnonzero(avg >= SOLVED)
    return int(hit[0]) + WINDOW if hit.size else None


def curve(returns, ends, grid):
    """Per seed: the mean return of the episodes ending in each window of the step grid (NaN if none)."""
    out = np.full((len(returns), len(grid) - 1), np.nan)
    for r, (ret, end) in enumerate(zip(returns, ends)):
        ret, end = np.asarray(ret), np.asarray(end)
        for i in range(len(grid) - 1):
            inside = (end > grid[i]) & (end <= grid[i + 1])
            out[r, i] = ret[inside].mean() if inside.any() else np.nan
    return out


def solved_text(values, counts):
    return " ".join(str(v) if v is not None else f">{c}" for v, c in zip(values, counts))


def faster_than(mine, ref):
    """Paired: +1 if ``mine`` solved in fewer episodes (censored = slower than any solved), ties 0."""
    key = lambda v: math.inf if v is None else v  # noqa: E731
    return [int(key(a) < key(b)) - int(key(a) > key(b)) for a, b in zip(mine, ref)]


def _p(value):
    return "-" if value is None or not np.isfinite(value) else f"{value:.3g}"


def report(results, steps, out):
    ref = results["epsilon_greedy"]
    ref_solve = [episodes_to_solve(r) for r in ref["returns"]]
    print(f"CartPole-v1 DQN, {len(ref['eval'])} paired seeds, {steps} environment steps per run")
    print(f"episodes to solve ({WINDOW}-episode moving average >= {SOLVED:g}; >E: not within the "
          f"budget, E episodes run); paired against epsilon_greedy by an exact sign test:")
    for method, res in results.items():
        solve = [episodes_to_solve(r) for r in res["returns"]]
        sign = faster_than(solve, ref_solve)
        wins, untied = sum(v > 0 for v in sign), sum(v != 0 for v in sign)
        versus = "" if method == "epsilon_greedy" else (
            f"  sooner on {wins} of {untied} untied pairs"
            + (f", p = {binomtest(wins, untied).pvalue:.3g}" if untied else ""))
        print(f"{method:>16}: solved {sum(v is not None for v in solve)}/{len(solve)}  "
              f"[{solved_text(solve, [len(r) for r in res['returns']])}]{versus}")
    print(f"greedy return after training (noise off, mean of {EVAL_EPISODES} episodes; 95% CI), "
          "paired difference against epsilon_greedy (t interval; p: paired t, Wilcoxon):")
    for method, res in results.items():
        own = estimate(res["eval"], bounds=(0.0, 500.0))
        line = (f"{method:>16}: {own.mean:6.1f} [{own.ci_low:6.1f}, {own.ci_high:6.1f}]  "
                f"wall {res['wall']:5.1f} s")
        if method != "epsilon_greedy":
            d = res["eval"] - ref["eval"]
            diff, (p_t, p_w) = estimate(d, bounds=(-500.0, 500.0)), paired_pvalues(d)
            line += (f"  diff {diff.mean:+6.1f} [{diff.ci_low:+6.1f}, {diff.ci_high:+6.1f}] "
                     f"n={diff.n} p_t={_p(float(p_t))} p_w={_p(float(p_w))}")
        print(line)
    grid = np.linspace(0, steps, 11).astype(int)
    curves = {m: curve(r["returns"], r["ends"], grid) for m, r in results.items()}
    print("return per episode by environment steps (mean over seeds [95% CI]):")
    print(f"{'steps':>8} " + " ".join(f"{m:>24}" for m in results))
    for i in range(len(grid) - 1):
        cells = []
        for m in results:
            v = curves[m][:, i]
            e = estimate(v[np.isfinite(v)], bounds=(0.0, 500.0))
            cells.append(f"{e.mean:6.1f} [{e.ci_low:6.1f},{e.ci_high:6.1f}]" if e.n >= 2 else "n<2")
        print(f"{grid[i + 1]:>8} " + " ".join(f"{c:>24}" for c in cells))
    plot(curves, grid, out)


def plot(curves, grid, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure")
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    mid = (grid[1:] + grid[:-1]) / 2
    for m, c in curves.items():
        rows = [estimate(c[np.isfinite(c[:, i]), i], bounds=(0.0, 500.0)) for i in range(c.shape[1])]
        mean = np.array([e.mean for e in rows])
        ax.plot(mid, mean, label=m)
        ax.fill_between(mid, [e.ci_low for e in rows], [e.ci_high for e in rows], alpha=0.2)
    ax.set(xlabel="environment steps", ylabel="episode return", title="DQN on CartPole-v1")
    ax.legend()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "exploration_returns.png", dpi=120, bbox_inches="tight")
    print(f"figure: {out / 'exploration_returns.png'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("NOISEWISE_QUICK") == "1",
                        help="2 seeds and a short budget (CI)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="study seed; replica i uses replica_seed(seed, i)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("NOISEWISE_WORKDIR", ".")))
    args = parser.parse_args(argv)
    if keras.backend.backend() != "jax":
        sys.exit(f"exploration_rl.py trains the seeds under jax.vmap and needs KERAS_BACKEND=jax "
                 f"(got {keras.backend.backend()})")
    n = args.seeds or (2 if args.quick else 10)
    steps = args.steps or (1500 if args.quick else 20_000)
    decay = max(1, steps // 4)
    seeds = [replica_seed(args.seed, i) for i in range(n)]
    results = {}
    for method in METHODS:
        start = time.perf_counter()
        returns, ends, evals = train(method, seeds, steps, decay)
        results[method] = {"returns": returns, "ends": ends, "eval": evals,
                           "wall": time.perf_counter() - start}
    report(results, steps, args.out)


if __name__ == "__main__":
    main()
