"""The executor contract: one result layout for every executor, hooks, and what the runner accepts."""

import math

import keras
import pytest

import noisewise
from noisewise.study import Store, Study, load_spec
from noisewise.study.execute import (
    Executor,
    FitExecutor,
    RunHooks,
    RunPlan,
    VmapExecutor,
    failed_result,
    history_from_epochs,
    result_from_history,
    versions,
)

SPEC = {
    "study": {"name": "executor", "seeds": 2, "seed": 4},
    "data": {"name": "circles"},
    "model": {"name": "mlp", "hidden": [4]},
    "train": {"epochs": 3, "batch_size": 16},
    "arms": [{"name": "baseline"}],
}


@pytest.fixture(scope="module")
def plan():
    return Study(load_spec(SPEC)).plans()[0]


def with_robustness(plan):
    """``plan`` as if its spec had a ``[robustness]`` table (never evaluated here)."""
    return RunPlan(plan.study_name, plan.arm, plan.replica, plan.seed, plan.data, plan.model,
                   plan.train, plan.base_dir, robustness={"noise": {}})


def test_history_layout_from_epoch_logs():
    logs = [{"loss": 0.9, "accuracy": 0.5}, {"loss": 0.7, "accuracy": 0.6, "val_loss": 0.8,
                                            "val_accuracy": 0.55}, {"loss": 0.6, "accuracy": 0.7}]
    assert history_from_epochs(logs) == {
        "loss": [0.9, 0.7, 0.6], "accuracy": [0.5, 0.6, 0.7], "val_loss": [0.8],
        "val_accuracy": [0.55], "epoch": [1, 2, 3], "val_epoch": [2]}
    assert history_from_epochs([]) == {"epoch": [], "val_epoch": []}


def test_a_diverged_history_is_cut_at_its_epoch_and_never_evaluated(plan):
    # What a vectorised executor sees: every epoch trained, NaN from epoch 2 on.
    logs = [{"loss": 0.7, "accuracy": 0.5, "val_loss": 0.6, "val_accuracy": 0.6},
            {"loss": math.nan, "accuracy": 0.5},
            {"loss": math.nan, "accuracy": 0.5, "val_loss": math.nan, "val_accuracy": 0.5}]

    def trained():
        raise AssertionError("a diverged run's model must not be evaluated")

    result = result_from_history(with_robustness(plan), history_from_epochs(logs), t0=0.0,
                                 started_at=1.0, trained=trained)
    assert (result.status, result.diverged_epoch) == ("diverged", 2)
    assert result.error.startswith("diverged at epoch 2: loss is nan")
    assert result.history["epoch"] == [1, 2] and result.history["val_epoch"] == [1]
    assert result.history["val_loss"] == [0.6] and math.isnan(result.history["loss"][-1])
    assert result.final["best_val_accuracy"] == 0.6 and result.final["best_epoch"] == 1
    assert (result.arm, result.replica, result.seed) == (plan.arm, plan.replica, plan.seed)


def test_a_healthy_history_is_done_with_final_metrics_and_provenance(plan):
    logs = [{"loss": 0.7, "accuracy": 0.5}, {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.4,
                                            "val_accuracy": 0.9}]
    result = result_from_history(plan, history_from_epochs(logs), t0=0.0, started_at=5.0)
    assert (result.status, result.error, result.diverged_epoch) == ("done", None, None)
    assert result.final == {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.4, "val_accuracy": 0.9,
                            "best_val_accuracy": 0.9, "best_epoch": 2}
    assert result.started_at == 5.0 and result.wall_s > 0
    assert result.backend == keras.backend.backend()
    assert result.versions == versions()
    assert result.versions["noisewise"] == noisewise.__version__
    assert result.versions["keras"] == keras.__version__


def test_a_known_divergence_keeps_the_history_as_given(plan):
    history = history_from_epochs([{"loss": 0.7}])
    result = result_from_history(plan, history, t0=0.0, started_at=0.0,
                                 diverged=(2, "diverged at epoch 2: fit raised"))
    assert (result.status, result.diverged_epoch) == ("diverged", 2)
    assert result.error == "diverged at epoch 2: fit raised"
    assert result.history["loss"] == [0.7]


def test_a_failed_result_keeps_the_error_and_its_traceback(plan):
    try:
        raise RuntimeError("builder broke")
    except RuntimeError as e:
        result = failed_result(plan, e, t0=0.0, started_at=0.0)
    assert result.status == "failed" and result.history == {} and result.final == {}
    assert result.error.startswith("RuntimeError: builder broke\n")
    assert "Traceback" in result.error


def test_the_fit_executor_calls_its_hooks_per_run_and_epoch():
    plans = Study(load_spec(SPEC)).plans()
    events = []
    hooks = RunHooks(on_start=lambda p: events.append(("start", p.key)),
                     on_epoch=lambda e: events.append(("epoch", e)))
    results = list(FitExecutor().run(plans, hooks))
    assert [r.key for r in results] == [p.key for p in plans]
    per_run = [("epoch", 1), ("epoch", 2), ("epoch", 3)]
    assert events == [("start", ("baseline", 0)), *per_run, ("start", ("baseline", 1)), *per_run]


class Wrapping:
    """A user's executor: trains with fit, records the hooks it was given."""

    def __init__(self):
        self.fit, self.hooks = FitExecutor(), []

    def run(self, plans, hooks=None):
        self.hooks.append(hooks)
        return self.fit.run(plans, hooks)


def test_a_user_executor_trains_a_study_and_gets_the_progress_hooks(tmp_path, capsys):
    assert isinstance(Wrapping(), Executor) and isinstance(FitExecutor(), Executor)
    assert isinstance(VmapExecutor(), Executor)
    executor = Wrapping()
    out = Study(SPEC).run(store=tmp_path / "s.db", executor=executor)
    assert (out.ran, out.failed) == (2, 0)
    (hooks,) = executor.hooks
    assert callable(hooks.on_start) and callable(hooks.on_epoch)  # the progress bars
    assert "2/2" in capsys.readouterr().err
    with Store(tmp_path / "s.db") as store:
        assert len(store.runs(out.study_id)) == 2
    quiet = Wrapping()
    Study(SPEC).run(store=tmp_path / "q.db", executor=quiet, quiet=True)
    assert quiet.hooks == [RunHooks()]  # nothing to drive


def test_the_runner_refuses_what_is_not_an_executor(tmp_path):
    with pytest.raises(ValueError, match=r"`executor` must be one of .*Received: executor=3"):
        Study(SPEC).run(store=tmp_path / "a.db", quiet=True, executor=3)
    with pytest.raises(ValueError, match=r"`workers` applies to executor='auto' or 'vmap'.*"
                                         r"Received: workers=2"):
        Study(SPEC).run(store=tmp_path / "b.db", quiet=True, executor=Wrapping(), workers=2)
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "b.db").exists()


def test_the_vectorised_executor_holds_chunks_of_replicas():
    assert VmapExecutor().replicas_at_once(seeds=50) == 32
    assert VmapExecutor(workers=2).replicas_at_once(seeds=50) == 64
    assert VmapExecutor(chunk_size=4).replicas_at_once(seeds=3) == 3
    with pytest.raises(ValueError, match="Received: chunk_size=0"):
        VmapExecutor(chunk_size=0)
