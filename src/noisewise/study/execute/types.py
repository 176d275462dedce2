"""What goes into an executor (:class:`RunPlan`) and what comes out (:class:`RunResult`)."""

import dataclasses
import functools
import importlib
import importlib.metadata
import platform
from typing import Any

import keras
import numpy as np

_BACKEND_LIBS = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow", "numpy": "numpy"}


@dataclasses.dataclass(frozen=True, eq=False)
class RunPlan:
    """Everything one run needs.

    Attributes:
        study_name: The study's name (for messages).
        arm: The study's arm (its ``name``, ``noise``, ``augment``, ``params``).
        replica: Replica index.
        seed: ``noisewise.random.replica_seed(study_seed, replica)``.
        data: The loaded dataset (``x_train``, ``y_train``, ``x_test``,
            ``y_test``, ``input_shape``, ``num_classes``).
        model: The ``[model]`` table.
        train: The ``[train]`` table.
        base_dir: Folder user builder modules are imported from.
        robustness: The spec's ``[robustness]`` table, or None.
    """

    study_name: str
    arm: Any
    replica: int
    seed: int
    data: Any
    model: dict
    train: dict
    base_dir: str | None = None
    robustness: dict | None = None
    calibration: dict | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.arm.name, self.replica)


@dataclasses.dataclass(eq=False)
class RunResult:
    """The outcome of one run, as the store records it.

    Attributes:
        arm: The arm (its ``name``, ``parent``, ``params``).
        replica, seed: As planned.
        status: ``"done"``, ``"failed"`` (the build or fit raised) or
            ``"diverged"`` (a training or validation curve became NaN or
            infinite; see :func:`~noisewise.study.execute.classify`).
        history: Keras-named curves (``loss``, ``accuracy``, ``val_loss``, ...)
            plus ``epoch`` (1-based epochs of the training curves) and
            ``val_epoch`` (the validated epochs, for the ``val_*`` curves).
        final: Last-epoch value of every metric, and ``best_val_<metric>`` /
            ``best_epoch``: the best validation value of the first compiled
            metric (or of the loss) and its epoch. Choosing the epoch on the
            test split makes ``best_*`` optimistic.
        wall_s: Seconds, model building included.
        backend: Keras backend name.
        versions: Python, Keras, backend library, NumPy and noisewise versions.
        error: Error text of a failed run; for a diverged one, the line
            :func:`~noisewise.study.execute.classify` gives.
        started_at: POSIX time the run started.
        diverged_epoch: First 1-based epoch at which a curve was not finite
            (None unless diverged).
        robustness: The terms of the ``[robustness]`` figures in ``final``:
            ``{"data": ..., "records": [...]}`` of
            :meth:`noisewise.robust.Evaluation.to_dict` (the split, number and
            range of the examples and the clip with where each came from; one
            record per metric with its settings and 95% interval over
            examples), or None without a ``[robustness]`` evaluation.
        calibration: What the report's reliability diagrams draw for an arm
            with ``predict`` (:class:`~noisewise.study.execute.uncertainty_eval.UncertaintyEvaluation`'s
            ``terms``), or None.
    """

    arm: Any
    replica: int
    seed: int
    status: str
    history: dict
    final: dict
    wall_s: float
    backend: str
    versions: dict
    error: str | None = None
    started_at: float | None = None
    diverged_epoch: int | None = None
    robustness: dict | None = None
    calibration: dict | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.arm.name, self.replica)


@functools.cache
def _versions(backend):
    lib = importlib.import_module(_BACKEND_LIBS.get(backend, backend))
    try:  # the installed distribution: the version noisewise.__version__ states
        ours = importlib.metadata.version("noisewise")
    except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path
        ours = "unknown"
    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        backend: getattr(lib, "__version__", "unknown"),
        "numpy": np.__version__,
        "noisewise": ours,
    }


def versions() -> dict[str, str]:
    """Versions that decide whether two runs can be compared bit for bit."""
    return dict(_versions(keras.backend.backend()))
