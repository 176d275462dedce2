"""The stored spec as TOML that ``noisewise run`` reads back (the report's Reproduce section).

Example:
    >>> import tomllib
    >>> from noisewise.study.report import spec_to_toml
    >>> spec = {"study": {"name": "demo", "seeds": 3},
    ...         "arms": [{"name": "g", "grid": {"noise[0].stddev": [0.1, 1.0]}}]}
    >>> tomllib.loads(spec_to_toml(spec)) == spec
    True
"""

import json
import math
import re

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# Read top-down like the spec files in examples/: [study] first, [[arms]] last.
_ORDER = {k: i for i, k in enumerate(("study", "data", "model", "train"))}


def _key(key):
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else
                                                 ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = [f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML: {v!r}")


def _table(header, table):
    # ``name`` first in each table: the stored JSON has its keys sorted.
    items = sorted(table.items(), key=lambda kv: kv[0] != "name")
    return [header] + [f"{_key(k)} = {_value(v)}" for k, v in items if v is not None] + [""]


def spec_to_toml(spec: dict) -> str:
    """The spec dict as TOML that :func:`noisewise.study.load_spec` reads back.

    Top-level tables become ``[section]``, lists of tables ``[[section]]``,
    anything nested inline. Keys whose value is None are left out (TOML has no
    null; the store writes non-finite numbers as null).

    Raises:
        TypeError: A value TOML cannot hold (not a bool, number, string, list or dict).
    """
    lines = []
    spec = dict(sorted(spec.items(), key=lambda kv: (kv[0] == "arms", _ORDER.get(kv[0], 4))))
    for section, body in spec.items():
        if isinstance(body, dict):
            lines += _table(f"[{_key(section)}]", body)
        elif isinstance(body, list) and body and all(isinstance(x, dict) for x in body):
            for item in body:
                lines += _table(f"[[{_key(section)}]]", item)
        elif body is not None:
            lines.insert(0, f"{_key(section)} = {_value(body)}")
    return "\n".join(lines)
