"""Which library each Keras backend needs, and the one-line error when it is missing.

Keras imports its backend's library while ``import keras`` runs; without it the
user gets a long traceback ending in ``No module named 'torch'``. noisewise
checks first (``noisewise/__init__.py`` does, just before Keras' own import
runs), so the message names the backend, the library and the extra to install.
"""

import importlib.util
import os

# Keras backend -> (library it imports, noisewise extra that installs it, or None: a core dependency).
LIBRARIES = {
    "jax": ("jax", None),
    "torch": ("torch", "torch"),
    "tensorflow": ("tensorflow", "tensorflow"),
    "numpy": ("numpy", None),
    "openvino": ("openvino", None),
}


class BackendNotInstalled(ModuleNotFoundError):
    """The Keras backend chosen with ``KERAS_BACKEND`` is not installed."""


def missing_backend(backend: str | None = None) -> str | None:
    """The one-line reason the backend (default ``$KERAS_BACKEND``) cannot load, or None.

    Example:
        >>> missing_backend("jax") is None
        True
    """
    backend = backend if backend is not None else os.environ.get("KERAS_BACKEND")
    if backend not in LIBRARIES:
        return None  # unset, or a name Keras itself rejects with its own message
    library, extra = LIBRARIES[backend]
    if importlib.util.find_spec(library) is not None:
        return None
    install = f'pip install "noisewise[{extra}]"' if extra else f"pip install {library}"
    others = [b for b in ("jax", "torch", "tensorflow")
              if b != backend and importlib.util.find_spec(LIBRARIES[b][0]) is not None]
    instead = f", or choose an installed backend: KERAS_BACKEND={others[0]}" if others else ""
    return (f"KERAS_BACKEND={backend} but {library} is not installed: {install}{instead}")


def check_backend() -> None:
    """Raise :class:`BackendNotInstalled` if ``$KERAS_BACKEND``'s library is missing."""
    reason = missing_backend()
    if reason is not None:
        raise BackendNotInstalled(reason)
