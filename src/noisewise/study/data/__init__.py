"""The data of a study: built-in datasets, user files and loaders, Python objects
in a dict spec and streaming sources.

- :mod:`~noisewise.study.data.dataset`: the ``Dataset`` type, tasks, value
  ranges, option checks and the fixed train/test split.
- :mod:`~noisewise.study.data.builtin`: the built-in datasets.
- :mod:`~noisewise.study.data.files`: ``.npz`` and ``.csv`` files.
- :mod:`~noisewise.study.data.checks`: label, target and feature checks.
- :mod:`~noisewise.study.data.loaders`: ``load_dataset`` and fingerprints.
- :mod:`~noisewise.study.data.objects`: descriptions of Python objects in a spec.
- :mod:`~noisewise.study.data.streams`: streaming sources.

:mod:`noisewise.study.datasets` and :mod:`noisewise.study.sources` re-export
these names and document the data a study can load. Nothing is imported here,
so importing one module of the package stays light.
"""
