"""Run a study: plan its runs, skip those the store has, train the rest, store each at once.

Runs go replica by replica (replica 0 of every arm, then replica 1, ...), so a
study stopped early still holds complete pairs for the comparisons. Each
finished run is written to the store before the next starts; rerunning the
same spec against the same store resumes where it stopped, and a spec grown
under the same study name (more seeds, arms added, removed or reordered)
reuses every stored run whose identity it still asks for and trains only the
others (:meth:`~noisewise.study.store.Store.open_study`).

Before the store is opened and before any training, the dataset is loaded and
every arm's model is built once (and thrown away), so a builder or data
problem fails fast, with a :class:`~noisewise.study.config.SpecError`, instead
of after hours of training; the study's memory and store size are estimated
and a study that cannot fit this machine is refused (:mod:`~noisewise.study.budget`).

The data and the user's loader and builder code are fingerprinted: a resume
whose data or code changed since the study was stored is refused by the store
(``new=True`` starts a new study instead), so old and new runs never mix.

Example:
    >>> import os, tempfile
    >>> from noisewise.study import Study
    >>> study = Study({"study": {"name": "demo", "seeds": 2},
    ...                "data": {"name": "circles"},
    ...                "model": {"name": "mlp", "hidden": [8]},
    ...                "train": {"epochs": 2},
    ...                "arms": [{"name": "baseline"}]})
    >>> outcome = study.run(store=os.path.join(tempfile.mkdtemp(), "s.db"), quiet=True)
    >>> outcome.ran, outcome.failed
    (2, 0)
"""

import dataclasses
import math
import os
import sys
import time

from noisewise.random import replica_seed
from noisewise.study import budget, datasets, sources
from noisewise.study.config import SpecError, StudySpec, load_spec
from noisewise.study.data.labeled import data_for
from noisewise.study.datasets import load_dataset
from noisewise.study.defaults import DEFAULT_STORE
from noisewise.study.execute import (DEFAULT_CHUNK, Executor, FitExecutor, RunHooks, RunPlan,
                                     VmapExecutor, make_optimizer, unsupported_reason)
from noisewise.study.execute.prepare import preflight, train_of
from noisewise.study.models import build_model
from noisewise.study.sharing import Sharing
from noisewise.study.store import Store

# The fit executor of "auto" and "fit", for the whole process: its compiled
# models outlive a study, so a second study of the same structure in this
# process (a notebook, a test suite) does not compile them again.
_FIT = FitExecutor()


@dataclasses.dataclass
class StudyRun:
    """What :meth:`Study.run` did. Results themselves are read from the store.

    The tables (:meth:`summary`, :meth:`comparisons`, :meth:`to_pandas`, and
    the table a notebook shows) are those of
    :class:`~noisewise.study.results.StudyResults`, read from the store.

    Attributes:
        name: Study name.
        store: Path of the store file.
        study_id: The study's id in the store.
        total: Runs the spec asks for (arms x seeds).
        skipped: Runs already in the store with the identity the spec asks for
            (resumed, or reused by a grown study); also ``reused``.
        ran: Runs trained now; also ``trained``.
        failed: Runs trained now that failed (stored as failed, retried next time).
        wall_s: Seconds spent.
        diverged: Runs trained now whose loss or metrics became non-finite
            (stored as diverged, left out of the statistics, not retried).
        kept: Stored runs of the study that its current spec does not ask for
            (arms removed or changed, replicas beyond fewer seeds): kept in
            the store, out of its statistics.
        elsewhere: Runs this process found to train that other processes
            sharing the store trained meanwhile (see :mod:`~noisewise.study.sharing`).
    """

    name: str
    store: str
    study_id: int
    total: int
    skipped: int
    ran: int
    failed: int
    wall_s: float
    diverged: int = 0
    kept: int = 0
    elsewhere: int = 0

    reused = property(lambda self: self.skipped)
    trained = property(lambda self: self.ran)

    def runs(self, status="done"):
        """The study's runs, read back from the store."""
        with Store(self.store, readonly=True) as store:
            return store.runs(self.study_id, status=status)

    def results(self, metric=None):
        """The study's :class:`~noisewise.study.results.StudyResults`, read from the store."""
        from noisewise.study.results import load  # pandas-free, but only when asked

        return load(self.store, self.study_id, metric=metric)

    def summary(self, metric=None):
        """Per-arm summary records (see :meth:`StudyResults.summary`)."""
        return self.results(metric).summary()

    def comparisons(self, metric=None):
        """Paired comparisons with the reference, as records."""
        return self.results(metric).comparisons()

    def to_pandas(self, what="summary", metric=None):
        """A :class:`pandas.DataFrame` of ``what`` ("summary", "comparisons" or "runs")."""
        return self.results(metric).to_pandas(what)

    def _repr_html_(self):
        return self.results()._repr_html_()


def resolve_store(spec, store=None):
    """The store: the argument, else ``study.store`` (relative to the spec), else ./noisewise.db."""
    if store is not None:
        return store if isinstance(store, Store) else os.fspath(store)
    return spec.store_path() or DEFAULT_STORE


class _Progress:
    """Rich progress bars on stderr: the study's runs, and the current run's epochs."""

    def __init__(self, total, epochs, quiet):
        self.bar, self.failed, self.diverged = None, 0, 0
        if quiet:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
            transient=False,
        )
        self.study = self.bar.add_task("runs", total=total)
        self.run = self.bar.add_task("epochs", total=epochs, visible=False)
        self._last = 0.0
        self.epochs, self.ended, self.others = epochs, 0, 0
        self.partials, self.chunk_of = {}, {}  # first run's key -> runs' worth trained; run -> chunk

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def start_run(self, plan):
        if self.bar is not None:
            from rich.markup import escape  # grid arm names hold brackets

            self.bar.update(self.run, completed=0, visible=True,
                            description=escape(f"{plan.arm.name} #{plan.replica}"))

    def epoch(self, epoch):
        # Rich redraws on its own thread; updating more often than it draws is waste.
        now = time.monotonic()
        if now - self._last > 0.1:
            self._last = now
            self.bar.update(self.run, completed=epoch)

    def chunk(self, plans, epoch):
        # Runs training together: the runs bar moves by their share of epochs done,
        # so its ETA moves steadily instead of jumping once per chunk.
        from rich.markup import escape  # grid arm names hold brackets

        first, last = plans[0], plans[-1]
        who = (f"{first.arm.name} #{first.replica}" if len(plans) == 1 else
               f"{first.arm.name} #{first.replica}-{last.replica}" if first.arm.name == last.arm.name
               else f"{len(plans)} runs")
        # Several chunks may train at once (on a cluster): each keeps its own share.
        chunk = plans[0].key
        for plan in plans:
            self.chunk_of[plan.key] = chunk
        self.partials[chunk] = len(plans) * epoch / self.epochs
        self.bar.update(self.run, completed=epoch, visible=True,
                        description=escape(f"{who} ({len(plans)} together)" if len(plans) > 1 else who))
        self.bar.update(self.study, completed=self.ended + self.partial + self.others)

    @property
    def partial(self):
        """Runs' worth of epochs trained by the chunks still training."""
        return sum(self.partials.values())

    def end_run(self, result):
        if self.bar is not None:
            self.bar.update(self.run, completed=len(result.history.get("loss", [])))
            self.ended += 1
            chunk = self.chunk_of.pop(result.key, None)
            if chunk in self.partials:  # its share of the chunk is now a finished run
                self.partials[chunk] = max(0.0, self.partials[chunk] - 1)
                if chunk not in self.chunk_of.values():
                    del self.partials[chunk]
            self.failed += result.status == "failed"
            self.diverged += result.status == "diverged"
            lost = [f"{n} {what}" for n, what in ((self.failed, "failed"),
                                                   (self.diverged, "diverged")) if n]
            self.bar.update(self.study, completed=self.ended + self.partial + self.others,
                            description="runs" + (
                f" [red]({', '.join(lost)})[/red]" if lost else ""))

    def elsewhere(self, done, waiting):
        """Runs other processes sharing the store trained (``done``) and ``waiting``
        runs still being trained, by this process or others."""
        if self.bar is not None and done > 0:
            self.others = done
            self.bar.update(self.study, completed=self.ended + self.partial + done,
                            description=f"runs ({done} by other processes"
                                        + (f", waiting for {waiting})" if waiting else ")"))

    @property
    def hooks(self):
        """The executor's callbacks: a run starting, an epoch of it ending."""
        if self.bar is None:
            return RunHooks()
        return RunHooks(on_start=self.start_run, on_epoch=self.epoch, on_chunk=self.chunk)


class Study:
    """A noise study: a validated spec, expanded into runs = arms x replicas.

    Args:
        spec: A :class:`~noisewise.study.config.StudySpec`, a TOML path or a dict
            (see :func:`~noisewise.study.config.load_spec`); a dict may hold
            Python objects: arrays, datasets, callables (see
            :mod:`~noisewise.study.sources`).
        data: Optional ``[data]`` table replacing the spec's, or the short form
            ``(x_train, y_train, x_test, y_test)``.
        model: Optional ``[model]`` table replacing the spec's, or a builder
            callable, or the path of a ``.keras`` file.

    Example: see the module docstring; from a notebook::

        study = Study({"study": {"name": "mine", "seeds": 5},
                       "arms": [{"name": "baseline"}]},
                      data=(x_train, y_train, x_test, y_test), model=build)
    """

    def __init__(self, spec, *, data=None, model=None):
        if isinstance(spec, StudySpec) and data is None and model is None:
            self.spec = spec
        else:
            self.spec = load_spec(spec, data=data, model=model)
        self._data = None

    @property
    def data(self):
        """The dataset, loaded once (errors are reported as spec errors of ``data``)."""
        if self._data is None:
            try:
                if sources.is_streaming(self.spec.data):
                    self._data = sources.load_streams(self.spec.data, replica_seed(self.spec.seed, 0))
                else:
                    self._data = load_dataset(self.spec.data, self.spec.base_dir,
                                              validation_split=self.spec.train.get("validation_split"),
                                              study_seed=self.spec.seed)
            except Exception as e:  # noqa: BLE001 -- user loaders raise anything
                detail = str(e) if isinstance(e, (OSError, ValueError)) else \
                    f"{type(e).__name__}: {e}"
                raise SpecError(f"data: cannot load the dataset: {detail}") from e
        return self._data

    def fingerprint(self):
        """``{"data": sha256 of the arrays, "code": sha256 of the user's loader and
        builder code and model file}`` (``code`` only when there is user code; see
        :func:`~noisewise.study.datasets.fingerprint` for streaming sources)."""
        out = {"data": datasets.fingerprint(self.data)}
        normalised = self.spec.to_dict()
        code = datasets.code_fingerprint(normalised["data"], normalised["model"],
                                         self.spec.base_dir)
        if code is not None:
            out["code"] = code
        return out

    def plans(self, skip=(), replicas=None):
        """Run plans in replica-major order, leaving out the keys in ``skip``;
        ``replicas`` keeps only the first that many replicas (default: all seeds)."""
        s = self.spec
        return [
            # data_for: without its unlabeled rows for an arm that cannot use them
            RunPlan(s.name, arm, replica, replica_seed(s.seed, replica), data_for(arm, self.data),
                    s.model, s.train, s.base_dir, s.robustness)
            for replica in range(s.seeds if replicas is None else replicas) for arm in s.arms
            if (arm.name, replica) not in skip
        ]

    def check(self):
        """Build every arm's model once (replica 0) so problems surface before training,
        and check its output against the task (units, logits or probabilities: see
        :func:`~noisewise.study.execute.prepare.preflight`).

        Returns:
            The largest number of parameters of an arm's model.
        """
        s, data = self.spec, self.data
        params = 0
        for plan in self.plans(replicas=1):
            arm = plan.arm
            try:
                model = build_model(s.model, arm.noise, data, plan.seed, arm.name,
                                    base_dir=s.base_dir)
            except Exception as e:  # noqa: BLE001 -- user builders raise anything
                raise SpecError(f"model: cannot build it for arm {arm.name!r}: "
                                f"{type(e).__name__}: {e}") from e
            try:
                make_optimizer(train_of(plan), arm.noise, 0, arm.name)
            except Exception as e:  # noqa: BLE001 -- Keras' own checks of the values
                raise SpecError(f"train: cannot build the optimizer for arm {arm.name!r}: "
                                f"{type(e).__name__}: {e}") from e
            try:  # the output against the task: never train wrong silently
                preflight(plan, model)
            except ValueError as e:
                text = str(e) if str(e).startswith("train.") else f"model: arm {arm.name!r}: {e}"
                raise SpecError(text) from e
            # Not count_params(): a wrapper such as the adversarial model is
            # not built until it trains, but its variables already exist.
            params = max(params, sum(math.prod(v.shape) for v in model.weights))
        return params

    def audit(self, *, folds=None, epochs=None, checks=None, seed=None, fail_on=None):
        """Audit the study's data (:func:`noisewise.study.audit.audit`); returns an
        :class:`~noisewise.study.audit.AuditResult`."""
        from noisewise.study.audit import audit  # the learned checks load cleanlab

        return audit(self, folds=folds, epochs=epochs, checks=checks, seed=seed, fail_on=fail_on)

    def check_size(self, params, store_path, executor):
        """Refuse (SpecError) a study whose memory or store size cannot fit ``executor``
        on this machine (an executor other than the vectorised one is taken to
        hold one run at a time)."""
        s, train = self.spec, self.spec.train
        # An executor holding replicas of a compiled program (vectorised, here or on
        # this machine's cluster workers) says how many it holds at once.
        vectorised = hasattr(executor, "replicas_at_once")
        n_metrics = 1 + len(train["metrics"])  # the loss and each compiled metric
        need = budget.estimate(
            runs=len(s.arms) * s.seeds, epochs=train["epochs"], n_train=len(self.data.x_train),
            curves=n_metrics * (1 + 1 / train["validate_every"]), params=params,
            replicas_at_once=executor.replicas_at_once(s.seeds) if vectorised else 1,
            vectorised=vectorised)
        reason = budget.refusal(need, store_path)
        if reason is not None:
            raise SpecError(f"study: too large for this machine: {len(s.arms)} arm(s) x "
                            f"{s.seeds} seed(s) x {train['epochs']} epoch(s): {reason}")

    def run(self, store=None, *, new=False, quiet=False, executor="auto", log=None,
            workers=None, claim_ttl=None):
        """Train every run the store does not have yet, writing each as it finishes.

        Args:
            store: A :class:`~noisewise.study.store.Store` or a path; default
                ``study.store`` (relative to the spec file) or ``./noisewise.db``.
            new: Start a new study even if one of this name is stored (the old
                one is kept under another name). Without it a stored study
                grows into this spec when only its arms, seeds or reference
                changed, reusing every stored run the spec still asks for; a
                change of its data, model, training or study seed is refused
                (see ``Store.open_study``).
            quiet: No progress bars.
            executor: ``"auto"`` (the vectorised JAX executor when it can run
                every run, else one ``fit`` per run, saying why in one line),
                ``"vmap"`` (vectorised; an error if it cannot), ``"fit"``, a
                ``distributed.Client`` (its cluster trains the study: see
                :class:`~noisewise.study.execute.DaskExecutor`), or an
                :class:`~noisewise.study.execute.Executor` (an object with
                ``run(plans, hooks)``).
            log: ``callable(str)`` for that line (default: stderr unless quiet).
            workers: Processes the vectorised executor trains in (default 1;
                see :class:`~noisewise.study.execute.VmapExecutor`); for an
                executor object, set it on the object instead.
            claim_ttl: Seconds a claim on a run lives without a heartbeat
                (default 60): processes sharing one store claim each run
                before training it, and take over a claim whose process
                stopped beating (:mod:`~noisewise.study.sharing`).

        Returns:
            A :class:`StudyRun`.
        """
        t0 = time.perf_counter()
        if executor == "fit" and workers not in (None, 1):
            raise ValueError("`workers` applies to the vectorised executor; the fit executor "
                             f"trains in this process. Received: workers={workers!r}, "
                             "executor='fit'")
        if log is None:
            log = (lambda line: None) if quiet else (
                lambda line: print(f"noisewise: {line}", file=sys.stderr))
        # Data and every model, before the store is touched or anything trains.
        params = self.check()
        for note in getattr(self.data, "notes", ()):
            log(note)
        audited = self._audit_first(log)
        executor = self._executor(executor, log, workers)
        target = resolve_store(self.spec, store)
        self.check_size(params, target.path if isinstance(target, Store) else target, executor)
        fingerprint = self.fingerprint()
        owned = not isinstance(target, Store)
        db = Store(target) if owned else target
        try:
            study_id = db.open_study(self.spec, new=new, fingerprint=fingerprint)
            if audited is not None:
                db.write_audit(study_id, audited.to_dict())
            # A grown study reuses every stored run whose identity the spec still
            # asks for (the store matches identities): only the others train.
            todo = self.plans(skip=db.done_keys(study_id))
            kept = db.kept_count(study_id)
            total = len(self.spec.arms) * self.spec.seeds
            counts = {"done": 0, "failed": 0, "diverged": 0}
            with _Progress(len(todo), self.spec.train["epochs"], quiet) as progress, \
                    Sharing(db, study_id, claim_ttl) as sharing:
                self._train_shared(todo, executor, db, study_id, sharing, progress, counts)
                elsewhere = len(todo) - len(sharing.remaining(todo)) - sum(counts.values())
            return StudyRun(self.spec.name, str(db.path), study_id, total,
                            total - len(todo), sum(counts.values()), counts["failed"],
                            time.perf_counter() - t0, diverged=counts["diverged"], kept=kept,
                            elsewhere=max(0, elsewhere))
        finally:
            if owned:
                db.close()

    def _audit_first(self, log):
        """The spec's ``[audit]``, before the store is touched or anything trains;
        AuditFailed (one line: check, count, threshold) when a threshold is exceeded."""
        if self.spec.audit is None:
            return None
        from noisewise.study.audit import AuditFailed

        result = self.audit()
        log(f"data audit: {sum(c.status == 'found' for c in result.checks.values())} check(s) "
            f"found something, {len(result.skipped)} skipped, {result.wall_s:.1f} s")
        if not result.passed:
            raise AuditFailed(result)
        return result

    @staticmethod
    def _train_shared(todo, executor, db, study_id, sharing, progress, counts):
        """Train ``todo``, claiming each run before it trains, until every run is
        stored, by this process or by another one sharing the store."""
        lazy = getattr(executor, "claims_before_training", False)
        pending = todo
        while pending:
            claimed_before = len(sharing.tried)
            hooks = dataclasses.replace(progress.hooks, claim=sharing.claim)
            batch = sharing.claimable(pending)
            if not lazy and batch:  # an executor that knows nothing of claims: claim its plans first
                batch, hooks = sharing.claim(batch), progress.hooks
            for result in executor.run(batch, hooks) if batch else ():
                db.write_run(study_id, result)
                counts[result.status] += 1
                progress.end_run(result)
            pending = sharing.remaining(pending)
            progress.elsewhere(len(todo) - len(pending) - sum(counts.values()),
                               waiting=len(pending))
            if pending and len(sharing.tried) == claimed_before:
                # Nothing was claimable: other processes hold live claims on the rest.
                time.sleep(min(1.0, sharing.ttl / 4))

    def _executor(self, choice, log, workers=None):
        allowed = ("auto", "vmap", "fit")
        if type(choice).__name__ == "Client" and type(choice).__module__.startswith("distributed"):
            from noisewise.study.execute.dask import DaskExecutor  # the optional extra's

            choice = DaskExecutor(client=choice, log=log)  # the client stays the caller's
        if not isinstance(choice, str):
            if not isinstance(choice, Executor):
                raise ValueError(f"`executor` must be one of {allowed} or an executor object "
                                 "with a `run(plans, hooks)` method. "
                                 f"Received: executor={choice!r}")
            if workers not in (None, 1):
                raise ValueError("`workers` applies to executor='auto' or 'vmap'; set it on "
                                 "an executor object itself (VmapExecutor(workers=...)). "
                                 f"Received: workers={workers!r}, executor={choice!r}")
            return choice
        if choice not in allowed:
            raise ValueError(f"`executor` must be one of {allowed} or an executor object. "
                             f"Received: executor={choice!r}")
        if choice == "fit":
            return _FIT
        # Replica 0 of every arm (plans come replica by replica): every structure.
        reason = unsupported_reason(self.plans(replicas=1))
        if reason is None:
            log(f"vectorised executor: replicas of an arm train together in one compiled "
                f"program, chunks of {DEFAULT_CHUNK}")
            return VmapExecutor(workers=workers, fallback=_FIT)
        if choice == "vmap":
            raise ValueError(f"`executor='vmap'` cannot run this study: {reason}")
        log(f"one fit per run: {reason}" + (
            f"; --workers {workers} is not used (it applies to the vectorised executor)"
            if workers not in (None, 1) else ""))
        return _FIT


def run_study(spec: StudySpec | dict | str | os.PathLike, store: Store | str | os.PathLike | None = None,
              **kwargs) -> StudyRun:
    """``Study(spec).run(store, **kwargs)``: load, validate, run and store a study."""
    return Study(spec).run(store, **kwargs)
