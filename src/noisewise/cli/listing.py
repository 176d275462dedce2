"""``noisewise list``: the studies in a store, with their run counts."""

from noisewise.cli._args import STORE_HELP
from noisewise.cli._errors import EXIT_OK
from noisewise.cli._output import console, markup
from noisewise.cli._stores import open_existing


def add_parser(subparsers):
    p = subparsers.add_parser("list", help="studies in a store")
    p.add_argument("--store", help=STORE_HELP)
    p.set_defaults(func=list_studies)
    return p


def list_studies(args):
    from rich.table import Table  # start-up time: rich loads only to print

    from noisewise.study import stats  # start-up time: SciPy

    with open_existing(args.store) as store:
        table = Table(title=markup(store.path), title_justify="left")
        for column in ("study", "arms", "done", "diverged", "failed", "expected", "hash",
                       "created"):
            table.add_column(column, justify="left" if column in ("study", "created") else "right")
        for s in store.studies():
            info = store.study(s["id"])
            counts = stats.run_counts(store.runs(s["id"], status=None)).values()
            seeds = info["spec"].get("study", {}).get("seeds") or 0
            table.add_row(markup(s["name"]), str(len(info["arms"])),
                          *(str(sum(getattr(c, k) for c in counts))
                            for k in ("done", "diverged", "failed")),
                          str(len(info["arms"]) * seeds), s["spec_hash"][:12],
                          markup(s["created_at"]))
        console().print(table)
    return EXIT_OK
