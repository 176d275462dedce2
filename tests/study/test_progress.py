"""Progress within a vectorised chunk: blocks of epochs report as they end, and change nothing."""

import keras
import numpy as np
import pytest

from noisewise.study import Study
from noisewise.study.execute import RunHooks, VmapExecutor
from noisewise.study.execute.vmap import block_size

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax",
                                reason="the vectorised executor is JAX-only")


def _plans(epochs, validate_every=1):
    spec = {"study": {"name": "p", "seeds": 3},
            "data": {"name": "circles"},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"epochs": epochs, "batch_size": 16, "validate_every": validate_every},
            "arms": [{"name": "hidden", "noise": [{"type": "gaussian", "where": "pre_activation",
                                                    "stddev": 0.1}]}]}
    return Study(spec).plans()


def test_block_size_splits_the_epochs():
    assert block_size(4000, 50) == 80
    assert block_size(22, 5) == 5  # blocks of 5: 5, 10, 15, 20, 22 (the last padded)
    assert block_size(3, 50) == 1
    assert block_size(7, 1) == 7


@pytest.mark.parametrize("epochs,validate_every", [(22, 1), (23, 3)])
def test_blocks_report_progress_and_give_the_same_runs(epochs, validate_every):
    plans = _plans(epochs, validate_every)
    calls = []
    hooks = RunHooks(on_chunk=lambda runs, epoch: calls.append((len(runs), epoch)))
    blocked = list(VmapExecutor(blocks=5).run(plans, hooks))
    whole = list(VmapExecutor(blocks=1).run(plans))
    assert calls == [(3, 5), (3, 10), (3, 15), (3, 20), (3, epochs)]
    for a, b in zip(blocked, whole):
        assert a.status == b.status == "done"
        assert a.history.keys() == b.history.keys()
        for key in a.history:  # the same program per epoch: the same numbers
            np.testing.assert_array_equal(np.asarray(a.history[key]), np.asarray(b.history[key]), key)
        assert a.final == b.final


def test_progress_bar_moves_within_a_chunk():
    from noisewise.study.runner import _Progress

    plans = _plans(10)
    progress = _Progress(total=6, epochs=10, quiet=False)
    seen = []
    with progress:
        progress.chunk(plans, 5)
        seen.append(progress.bar.tasks[progress.study].completed)
        for result in VmapExecutor(blocks=2).run(plans):
            progress.end_run(result)
            seen.append(progress.bar.tasks[progress.study].completed)
    assert seen == [1.5, 1.0 + 0.5, 2.0, 3.0]
