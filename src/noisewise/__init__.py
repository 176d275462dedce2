"""noisewise: noise and randomness for Keras 3 models, used on purpose and measured.

JAX is the default backend: if the user has not chosen one (``KERAS_BACKEND``)
before importing noisewise, noisewise chooses JAX before Keras is imported.

The public names below are the whole API; everything else lives in private
modules. Every name loads on first use, so ``import noisewise`` (and the
``noisewise`` command's ``--help``) imports no Keras. The layers and the
optimizer wrapper are registered with Keras as soon as Keras is imported,
whichever comes first, so ``keras.models.load_model`` finds them in a fresh
process after a plain ``import noisewise``.
"""

import importlib
import importlib.util
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

__version__ = "0.1.0"

# name -> module that defines it; imported on first access.
_LAZY = {
    "GaussianNoise": "noisewise.layers",
    "MultiplicativeNoise": "noisewise.layers",
    "PoissonNoise": "noisewise.layers",
    "SaltAndPepperNoise": "noisewise.layers",
    "UniformNoise": "noisewise.layers",
    "WeightNoise": "noisewise.layers",
    "NoisyDense": "noisewise.layers",
    "GradientNoise": "noisewise.optimizers",
    "seed_everything": "noisewise.random",
    "random": "noisewise.random",
    "NoiseScheduler": "noisewise.layers.scheduler",
    "schedules": "noisewise.layers.schedules",
    "inject": "noisewise.injection",
    "injection_points": "noisewise.injection",
    "InjectionPoint": "noisewise.injection",
    "predict_mc": "noisewise.uncertainty",
    "MCPrediction": "noisewise.uncertainty",
    "uncertainty": "noisewise.uncertainty",
    "GeneralizedCrossEntropy": "noisewise.losses",
    "SymmetricCrossEntropy": "noisewise.losses",
    "losses": "noisewise.losses",
    "PiModel": "noisewise.consistency",
    "exploration": "noisewise.exploration",
}
_SUBPACKAGES = ("augment", "robust", "study")
# Importing these registers noisewise's layers and optimizer with Keras' serialisation.
_REGISTERING = ("noisewise.layers", "noisewise.optimizers", "noisewise.losses")


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__.rsplit(".", 1)[-1] == name else getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"noisewise.{name}")
    raise AttributeError(f"module 'noisewise' has no attribute {name!r}")


def _register():
    for module in _REGISTERING:
        importlib.import_module(module)


# Plain classes, not importlib.abc's: that module alone costs 80 ms at start-up.
class _AfterKeras:
    """Keras' own loader, then noisewise's registrations (every other call goes to Keras')."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: Keras' own
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        from noisewise._core.backends import check_backend

        check_backend()  # one line naming the extra, not Keras' traceback from deep inside
        self._loader.exec_module(module)
        _register()


class _WhenKerasImports:
    """Finds ``keras`` once, with the loader wrapped so registration follows the import."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # once, and never in the way of the search below
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _AfterKeras(spec.loader)
        return spec


if "keras" in sys.modules:
    _register()
elif not any(isinstance(f, _WhenKerasImports) for f in sys.meta_path):
    sys.meta_path.insert(0, _WhenKerasImports())


__all__ = [
    "GaussianNoise",
    "GradientNoise",
    "MultiplicativeNoise",
    "NoiseScheduler",
    "PoissonNoise",
    "SaltAndPepperNoise",
    "UniformNoise",
    "WeightNoise",
    "InjectionPoint",
    "inject",
    "injection_points",
    "random",
    "schedules",
    "seed_everything",
]
