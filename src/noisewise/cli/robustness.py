"""``noisewise robustness MODEL.keras --data NAME|FILE``: robustness of a saved model.

The options build a config for :func:`noisewise.robust.evaluate_for_study`;
``--config FILE`` (TOML or JSON, the same format) replaces them. ``--json
FILE`` never replaces the model, the data or the config, nor (without
``--force``) any existing file, and is written whole or not at all.
"""

import json
import os
import tomllib
from pathlib import Path

from noisewise._core.files import atomic_open, check_output
from noisewise.cli import _choices
from noisewise.cli._errors import EXIT_OK, UsageError

_HELP = """Evaluate a saved Keras classifier under test-time noise, attacks and randomized
smoothing. The options build a config for noisewise.robust.evaluate_for_study;
--config FILE (TOML or JSON, the same format) replaces them. Without any of
--noise/--attack/--sigma/--config, a Gaussian noise sweep is run."""


def add_parser(subparsers):
    p = subparsers.add_parser("robustness", description=_HELP,
                              help="robustness of a saved model: noise, attacks, smoothing")
    p.add_argument("model", help="saved Keras model (.keras)")
    p.add_argument("--data", required=True,
                   help=f"a built-in study dataset ({', '.join(_choices.STUDY_DATASETS)}: its "
                        "test split), a study .csv, or an .npz with x_test and y_test (or x and y)")
    p.add_argument("--config", help="robustness config, .toml or .json")
    p.add_argument("--noise", action="append",
                   help=f"noise family (repeatable): {', '.join(_choices.NOISE_TYPES)}")
    p.add_argument("--levels", default="0,0.1,0.2,0.3,0.5",
                   help="noise levels (default: %(default)s)")
    p.add_argument("--draws", type=int, default=5,
                   help="noise draws per level (default: %(default)s)")
    p.add_argument("--attack", action="append", choices=_choices.ATTACKS,
                   help="attack (repeatable)")
    p.add_argument("--eps", default="0.1", help="attack budgets (default: %(default)s)")
    p.add_argument("--norm", default="linf", choices=_choices.NORMS)
    p.add_argument("--steps", type=int, default=10, help="PGD steps (default: %(default)s)")
    p.add_argument("--sigma", type=float,
                   help="randomized smoothing noise level; enables certification")
    p.add_argument("--n0", type=int, default=100)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--radii", help="radii for certified accuracy (default: 0 and sigma)")
    p.add_argument("--clip", help="data range LOW,HIGH")
    p.add_argument("--max-examples", type=int, help="evaluate the first N test examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out",
                   help="write the metrics as JSON to this file ('-' for stdout)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --json file (never the model, data or config)")
    p.add_argument("--quiet", action="store_true", help="print no tables")
    p.set_defaults(func=robustness)
    return p


class _Refused(UsageError):
    """A bad option, file or config of this subcommand (exit code 2)."""

    def __init__(self, err):
        super().__init__(f"noisewise robustness: {err}")


def _floats(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise _Refused(f"expected comma-separated numbers, received {text!r}") from None


def _read_config(path):
    path = Path(path)
    if path.suffix == ".toml":
        with open(path, "rb") as f:
            data = tomllib.load(f)
        return data.get("robustness", data)
    with open(path) as f:
        return json.load(f)


def _config(args):
    if args.config:
        return _read_config(args.config)
    config = {}
    if args.clip:
        config["clip"] = _floats(args.clip)
    if args.max_examples:
        config["max_examples"] = args.max_examples
    noise = args.noise or ([] if (args.attack or args.sigma) else ["gaussian"])
    if noise:
        config["noise"] = [{"type": t, "levels": _floats(args.levels), "draws": args.draws}
                           for t in noise]
    if args.attack:
        config["attacks"] = [{"type": a, "eps": _floats(args.eps), "norm": args.norm,
                              **({"steps": args.steps} if a == "pgd" else {})}
                             for a in args.attack]
    if args.sigma is not None:
        config["smoothing"] = {"sigma": args.sigma, "n0": args.n0, "n": args.n,
                               "alpha": args.alpha}
        if args.radii:
            config["smoothing"]["radii"] = _floats(args.radii)
    return config


def load_data(name):
    """``(x_test, y_test)`` of an .npz file, or the test split of a study dataset or .csv."""
    import numpy as np  # start-up time, as the study datasets below

    if name.endswith(".npz"):
        with np.load(name) as f:
            for xk, yk in (("x_test", "y_test"), ("x", "y")):
                if xk in f and yk in f:
                    return f[xk], f[yk]
            raise ValueError(f"{name} must hold x_test and y_test (or x and y); it holds "
                             f"{sorted(f.files)}")
    from noisewise.study.datasets import BUILTIN, load_dataset  # start-up time: scikit-learn

    if name.endswith(".csv"):
        data = load_dataset({"path": str(Path(name).resolve())})
    elif name in BUILTIN:
        data = load_dataset({"name": name})
    else:
        raise ValueError(f"--data must be an .npz or .csv file or one of {', '.join(BUILTIN)}. "
                         f"Received: {name!r}")
    return data.x_test, data.y_test


def _print(metrics, details):
    from rich.console import Console  # start-up time: rich loads only to print
    from rich.table import Table

    console = Console()
    for d in details:
        rows = getattr(d, "rows", None)
        if rows is None:
            continue
        t = Table(title=f"{d.noise} noise: {d.metric}, mean and 95% CI over "
                        f"{d.scores.shape[1]} draws")
        for col in ("level", "mean", "95% CI"):
            t.add_column(col, justify="right")
        for r in rows():
            t.add_row(f"{r['level']:g}", f"{r['mean']:.4f}",
                      f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]")
        console.print(t)
    t = Table(title="robustness metrics")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in metrics.items():
        t.add_row(k, f"{v:.4f}")
    console.print(t)


def robustness(args):
    """Evaluate; a bad option, file or config is exit 2, a failing model run exit 1."""
    target = args.json_out if args.json_out not in (None, "-") else None
    if target:  # checked before anything is evaluated; written only once all succeeded
        inputs = [p for p in (args.model, args.data, args.config) if p and os.path.isfile(p)]
        check_output(target, protect=[("input", p) for p in inputs], force=args.force,
                     ours=None)
    try:
        config = _config(args)
        if not Path(args.model).exists():
            raise ValueError(f"model file not found: {args.model}")
        x, y = load_data(args.data)
        # Start-up time: Keras, and the noisewise layers registered so that saved models load.
        import keras

        import noisewise.layers  # noqa: F401
        from noisewise.robust._study import evaluate

        model = keras.saving.load_model(args.model, compile=False)
    except (ValueError, OSError, KeyError) as err:
        raise _Refused(err) from err
    try:
        metrics, details = evaluate(model, x, y, config, args.seed)
    except ValueError as err:
        raise _Refused(err) from err
    if not args.quiet:
        _print(metrics, details)
    text = json.dumps(metrics, indent=2)
    if args.json_out == "-":
        print(text)
    elif target:
        with atomic_open(target, "w") as f:
            f.write(text + "\n")
    return EXIT_OK
