"""Opening the store of ``--store`` read-only and naming the study a command works on."""

from noisewise.cli._errors import UsageError
from noisewise.study.defaults import DEFAULT_STORE, latest_study


def open_existing(path):
    """The store, read-only: show, list, export and report never create or change one."""
    from noisewise.study.report import open_store  # start-up time: the study package

    return open_store(path or DEFAULT_STORE)


def study_name(store, name):
    """``name`` if the store has it (default: the latest study), else a usage error."""
    names = [s["name"] for s in store.studies()]
    if not names:
        raise UsageError(f"noisewise: {store.path}: holds no studies")
    if name is None:
        return latest_study(store)
    if name not in names:
        raise UsageError(f"noisewise: no study {name!r} in {store.path}; studies: "
                         + ", ".join(map(repr, names)))
    return name


def resolve_study(args):
    """Check the store and study of ``args`` (read-only), filling in the default study."""
    with open_existing(args.store) as store:
        args.study = study_name(store, args.study)
    return args.study
