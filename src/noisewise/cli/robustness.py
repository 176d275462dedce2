"""``noisewise robustness MODEL.keras --data NAME|FILE``: robustness of a saved model.

The options build a config for :func:`noisewise.robust.evaluate_for_study`;
``--config FILE`` (TOML or JSON, the same format) replaces them. ``--json
FILE`` never replaces the model, the data or the config, nor (without
``--force``) any existing file, and is written whole or not at all.

Attacks and noise are clipped to the data's range unless ``--clip`` says
otherwise: a built-in dataset's known range, else the observed min and max of
the evaluated data. The tables and the JSON state every setting behind each
figure (attack, norm, eps, steps, step size, clip; sigma, n0, n, alpha), the
split and number of examples, and a 95% interval over examples.
"""

import json
import os
import tomllib
from pathlib import Path
from typing import NamedTuple

from noisewise._core.files import atomic_open, check_output
from noisewise.cli import _choices
from noisewise.cli._errors import EXIT_OK, UsageError

_HELP = """Evaluate a saved Keras classifier under test-time noise, attacks and randomized
smoothing. The options build a config for noisewise.robust.evaluate_for_study;
--config FILE (TOML or JSON, the same format) replaces them. Without any of
--noise/--attack/--sigma/--config, a Gaussian noise sweep is run. Attacks and
noise are clipped to the data's range by default (--clip). Every table and the
JSON state the settings behind each figure and the examples it is measured on."""


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
    p.add_argument("--clip", default="data",
                   help="range attacks and noise are clipped to: LOW,HIGH, 'none', or 'data' "
                        "(default: a built-in dataset's known range, else the observed min and max "
                        "of the evaluated data)")
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
    clip = args.clip.strip().lower()
    if clip != "data":
        try:
            config["clip"] = clip if clip == "none" else _floats(args.clip)
        except _Refused:
            raise _Refused(f"--clip must be LOW,HIGH, 'data' or 'none'. Received: --clip={args.clip!r}") from None
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


class Data(NamedTuple):
    """Evaluation inputs and labels, which split they are, and the data's range if it is known."""

    x: object
    y: object
    split: str
    value_range: tuple | None = None
    range_source: str | None = None


def load_data(name):
    """The :class:`Data` of an .npz file, or the test split of a study dataset or .csv."""
    import numpy as np  # start-up time, as the study datasets below

    if name.endswith(".npz"):
        with np.load(name) as f:
            for xk, yk, split in (("x_test", "y_test", "test"), ("x", "y", "whole file")):
                if xk in f and yk in f:
                    return Data(f[xk], f[yk], split)
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
    # A built-in dataset's known range (noisewise.study.datasets.VALUE_RANGES); the others are
    # standardised or generated, so their observed min and max (stated as such) is all there is.
    return Data(data.x_test, data.y_test, "test", data.value_range, data.range_source)


def _value(v):
    """A setting as text: numbers with ``g`` (eps 0.1, alpha 0.001), a range as [low, high], None as none."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(_value(e) for e in v) + "]"
    return "none" if v is None else str(v)


# Record keys that are the figure itself, or stated once for the whole table; the others are settings.
_FIGURE = ("metric", "evaluation", "value", "count", "ci_low", "ci_high", "interval", "examples")


def _groups(records):
    groups = {}
    for r in records:
        key = (r["evaluation"], r.get("attack"), r.get("norm"), r.get("noise"), r.get("examples"))
        groups.setdefault(key, []).append(r)
    return groups.values()


def _table(records, split):
    """``(title, table)`` of one evaluation: settings shared by all rows in the title, the others as columns."""
    from rich.table import Table  # start-up time: rich loads only to print

    first, kind = records[0], records[0]["evaluation"]
    name = {"attack": f"{first.get('attack')} attack", "noise": f"{first.get('noise')} noise",
            "smoothing": "randomized smoothing"}.get(kind, kind)
    keys = list(dict.fromkeys(k for r in records for k in r if k not in _FIGURE + (kind,)))
    varying = [k for k in keys if len({repr(r.get(k, "-")) for r in records}) > 1]
    shared = "".join(f", {k.replace('_', ' ')} {_value(first[k])}" for k in keys if k not in varying)
    intervals = sorted({r["interval"] for r in records if r["interval"]})
    title = (f"{name}{shared}; {split} split, {first['examples']} examples; "
             f"95% CI: {', '.join(intervals) or 'none'}")
    t = Table()
    for col in ["metric"] + [k.replace("_", " ") for k in varying] + ["value", "95% CI"]:
        t.add_column(col, justify="left" if col == "metric" else "right")
    for r in records:
        ci = "n/a" if r["ci_low"] is None else f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        t.add_row(r["metric"], *(_value(r[k]) if k in r else "-" for k in varying), f"{r['value']:.4f}", ci)
    return title, t


def _print(result, source):
    from rich.console import Console  # start-up time: rich loads only to print

    d = result.data
    shape = f"shape {tuple(d['shape'])}" + (f", reshaped to {tuple(d['model_shape'])} for the model"
                                            if d["reshaped"] else "")
    console = Console(highlight=False)
    console.print(f"data: {source}, {d['split']} split, {d['examples']} examples (of {d['available']}), "
                  f"{shape}; range {_value(d['range'])} ({d['range_source']}); clip {_value(d['clip'])} "
                  f"({d['clip_source']}); seed {d['seed']}")
    for records in _groups(result.records):
        title, table = _table(records, d["split"])
        console.print(title)
        console.print(table)


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
        data = load_data(str(args.data))
        # Start-up time: Keras, and the noisewise layers registered so that saved models load.
        import keras

        import noisewise.layers  # noqa: F401
        from noisewise.robust._study import evaluate

        model = keras.saving.load_model(args.model, compile=False)
    except (ValueError, OSError, KeyError) as err:
        raise _Refused(err) from err
    try:
        result = evaluate(model, data.x, data.y, config, args.seed, value_range=data.value_range,
                          range_source=data.range_source, split=data.split)
    except ValueError as err:
        raise _Refused(err) from err
    if not args.quiet:
        _print(result, args.data)
    out = result.to_dict()
    out["data"] = {"source": str(args.data), **out["data"]}
    text = json.dumps({"model": str(args.model), **out}, indent=2)
    if args.json_out == "-":
        print(text)
    elif target:
        with atomic_open(target, "w") as f:
            f.write(text + "\n")
    return EXIT_OK
