"""``noisewise schema``: the study spec's JSON Schema, for editors that complete and check specs.

Example: ``noisewise schema > noisewise.schema.json``, then point the editor's
TOML or JSON support (e.g. Taplo's ``#:schema`` comment) at that file.
"""

import json

from noisewise.cli._errors import EXIT_OK


def add_parser(subparsers):
    p = subparsers.add_parser(
        "schema", help="print the JSON Schema of a study spec",
        description="Print the JSON Schema of a study spec, for editors that complete and "
                    "check spec files: noisewise schema > noisewise.schema.json")
    p.set_defaults(func=schema)
    return p


def schema(args):
    # Start-up time: pydantic and the spec models load only to print the schema.
    from noisewise.study.config import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK
