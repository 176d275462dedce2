"""Pre-flight size check: will this study fit in this machine's memory and disk?

A study that cannot fit should be refused before the store is touched, not
found out by the out-of-memory killer hours later (``seeds = 1000000000``
grows memory by gigabytes a second). The estimate counts what grows with
the study's size; the model's own working memory is small next to it for
the studies that get refused, and is covered by a margin.

What grows, per replica held in memory at once:

- the data order: ``epochs x n_train`` shuffling keys (float64), their
  argsort (int64) and the int32 permutation the vectorised executor feeds
  (20 bytes per entry); the per-run ``fit`` path draws them one epoch at a
  time instead;
- the learning curves: ``epochs x curves`` values as float32 on the device,
  float64 in NumPy and Python floats in the history lists (about 48 bytes);
- the training state: weights, optimizer slots and gradients (about 4 float32
  copies of the parameters).

The vectorised executor holds two chunks at once (it builds the next while
one trains); ``fit`` holds one run. The store keeps every curve as float64
(8 bytes a value), and the report reads them back into memory, so the
stored curves must fit on the disk and in memory too.

Example:
    >>> need = estimate(runs=10, epochs=100, n_train=30, curves=4, params=2001,
    ...                 replicas_at_once=1)
    >>> need.memory < 10 * 2**20, need.store
    (True, 32000)
"""

import dataclasses
import os
import shutil

_ORDER_BYTES = 20  # float64 key + int64 argsort + int32 permutation, per (epoch, example)
_CURVE_BYTES = 48  # float32 device log + float64 copy + a Python float in a list
_STATE_COPIES = 4  # weights, two Adam slots, gradients
_STORE_BYTES = 8  # float64 per stored curve value
MARGIN = 0.8  # use at most this share of the available memory / free disk


@dataclasses.dataclass(frozen=True)
class Need:
    """Bytes a study needs: ``memory`` at its peak while training, ``store`` on disk."""

    memory: int
    store: int


def estimate(*, runs, epochs, n_train, curves, params, replicas_at_once, vectorised=False):
    """Estimated peak memory and store size of a study (see the module docstring).

    ``curves`` is the number of curve values per epoch: one per training
    metric, plus one per validation metric divided by ``validate_every``.
    """
    order = epochs * n_train * _ORDER_BYTES if vectorised else n_train * _ORDER_BYTES
    per_replica = order + epochs * curves * _CURVE_BYTES + params * 4 * _STATE_COPIES
    held = replicas_at_once * (2 if vectorised else 1)
    return Need(memory=int(held * per_replica), store=int(runs * epochs * curves * _STORE_BYTES))


def available_memory():
    """Bytes of memory available to a new allocation (``MemAvailable`` on Linux), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def free_disk(path):
    """Free bytes on the file system that will hold ``path`` (its nearest existing folder)."""
    folder = os.path.abspath(os.fspath(path))
    while folder and not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def refusal(need, store_path, *, memory=None, disk=None):
    """The reason this study cannot fit, or None when it can.

    Args:
        need: A :class:`Need`.
        store_path: Where the store will be (its file system's free space counts).
        memory, disk: Bytes available (default: measured on this machine).
    """
    memory = available_memory() if memory is None else memory
    disk = free_disk(store_path) if disk is None else disk
    peak = max(need.memory, need.store)  # the report reads every stored curve back
    if memory is not None and peak > MARGIN * memory:
        what = "training" if need.memory >= need.store else "reading its curves back"
        return (f"the study needs about {_size(peak)} of memory for {what}, and this machine "
                f"has {_size(memory)} available; use fewer seeds, epochs or arms, or "
                "validate less often (train.validate_every)")
    if disk is not None and need.store > MARGIN * disk:
        return (f"its learning curves need about {_size(need.store)} in the store, and its "
                f"file system has {_size(disk)} free")
    return None
