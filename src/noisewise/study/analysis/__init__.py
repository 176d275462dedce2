"""Statistics of a noise study, computed from store records (numpy + scipy.stats).

Input is a list of run records as returned by ``Store.runs``: dicts with
``arm``, ``replica``, ``status`` and ``final`` (final metrics under Keras
names); grid arms also carry ``arm_parent`` and ``arm_params``. Records of any
status may be passed: only ``done`` runs count (:mod:`.counts`).

Modules:

- :mod:`.estimates`: :class:`Estimate`, metric direction and bounds, the t and
  logit-t intervals, honest at small n and near bounds;
- :mod:`.significance`: the paired t and exact Wilcoxon signed-rank p-values,
  Holm's adjustment and the verdict;
- :mod:`.counts`: run status (done, diverged, failed) and the runs each arm lost;
- :mod:`.summaries`: per-arm summaries (:func:`summarize`);
- :mod:`.paired`: paired comparisons with the reference (:func:`compare`) and
  :data:`TESTS`, the method behind each column;
- :mod:`.grids`: the best level of a grid (:func:`grid_best`);
- :mod:`.planning`: how many seeds a study needs, from a pilot (power).

docs/STATISTICS.md has the methods and their measured coverage.
``noisewise.study.stats`` and ``noisewise.study.planning`` re-export these names.

Example:
    >>> from noisewise.study.analysis.paired import compare
    >>> from noisewise.study.analysis.summaries import summarize
    >>> runs = [{"arm": a, "replica": i, "status": "done",
    ...          "final": {"val_accuracy": v}}
    ...         for a, vals in {"base": [0.80, 0.82, 0.81],
    ...                         "noisy": [0.84, 0.85, 0.83]}.items()
    ...         for i, v in enumerate(vals)]
    >>> round(summarize(runs)["noisy"].mean, 3)
    0.84
    >>> round(compare(runs, "base")["noisy"].mean_diff, 3)
    0.03
"""
