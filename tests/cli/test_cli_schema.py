"""``noisewise schema``: the study spec's JSON Schema, complete enough for an editor."""

import json
import tomllib
from pathlib import Path

from noisewise.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_schema_prints_the_spec_sections_as_json(capsys):
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    schema = json.loads(out)
    assert {"study", "data", "model", "train", "arms"} <= set(schema["properties"])
    assert out.startswith("{\n  ")  # indent 2, for people who read it
    # Every top-level table of every example is a property the schema knows.
    for example in sorted((ROOT / "examples").glob("*.toml")):
        with open(example, "rb") as f:
            assert set(tomllib.load(f)) <= set(schema["properties"]), example.name
