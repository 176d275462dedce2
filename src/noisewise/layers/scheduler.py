"""The callback that drives noise layers' levels with a schedule (:mod:`noisewise.schedules`).

:class:`NoiseScheduler` evaluates a schedule at the start of every epoch or
step, or an adaptive schedule from each validated epoch's logs, and sets the
level of noise layers (anything with ``set_level``/``get_level``).
"""

import math
from typing import Any

import keras

from noisewise._core import keras_compat
from noisewise._core.validation import _is_real, check_choice
from noisewise.layers.schedules import Adaptive, get


def is_noise_layer(layer: Any) -> bool:
    """True for layers whose noise level can be scheduled (``get_level`` and ``set_level``)."""
    return callable(getattr(layer, "set_level", None)) and callable(getattr(layer, "get_level", None))


def find_noise_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Every schedulable noise layer in ``model``, recursively (nested models, wrappers)."""
    # Every tracked sublayer, also inside subclassed layers and models, which
    # `model.layers` does not reach.
    return [layer for layer in keras_compat.flatten_layers(model, include_self=False)
            if is_noise_layer(layer)]


def _layer_index(model):
    layers = keras_compat.flatten_layers(model, include_self=False)
    return layers, {layer.name: layer for layer in layers}


class NoiseScheduler(keras.callbacks.Callback):
    """Set noise layers' levels from a schedule at each epoch or step, and log them.

    At the start of every epoch (``by="epoch"``, ``t`` = the epoch index) or
    every training step (``by="step"``, ``t`` = the optimizer's step count at
    the start of ``fit`` plus the batches trained since, so it carries over
    between ``fit`` calls) the schedule is evaluated and the level
    set on the target layers; at the end of each epoch the level in use (for
    ``by="step"``, the last step's) is written to ``logs[log_name]``, so it
    appears in ``History.history``. With a per-layer dict of schedules the log
    keys are ``f"{log_name}/{layer.name}"``. Levels persist after training.

    An adaptive schedule (:func:`adaptive`) starts from the layers' current
    level (one level for all its layers, within its ``bounds``) and, at the
    end of each epoch with validation logs, sets the next epoch's level from
    them; the level logged for an epoch is the one it trained with. It needs
    ``by="epoch"``, and refuses logs without its metric, and a ``fit`` in
    which no epoch was validated (no ``validation_data``), when training ends.
    An augmentation pipeline (:class:`~noisewise.augment.AugmentPipeline`,
    its level the probability of augmenting an example) is driven only when
    named in ``layers`` or in a per-layer dict.

    On JAX, ``fit`` detaches the values of the model's variables and trains a
    private copy during an epoch: a level assigned mid-epoch would not reach
    the training step, and would be overwritten when the copy is written back
    at the epoch's end. For per-step changes the callback first calls
    ``model.jax_state_sync()``, which writes the copy back and marks it
    stale; ``fit`` then re-reads every variable, the new level included,
    before the next step. This is the hook Keras' JAX trainer provides for
    callbacks that touch state; it costs one pass over the variables, and
    only on steps where a level changes. With ``steps_per_execution > 1``,
    levels change once per execution block.

    Args:
        schedule: A schedule (see :mod:`noisewise.schedules`), any callable
            ``f(t) -> level``, a number, or a dict mapping layers (or layer
            names) to such schedules for per-layer levels (a dict with a
            ``"kind"`` key is a schedule config, see :func:`get`).
        layers: Layers or layer names to drive. Default: every layer of the
            model, searched recursively, that has ``set_level`` and
            ``get_level`` (noisewise noise layers and ``WeightNoise``). Not
            allowed with a per-layer dict.
        by: ``"epoch"`` or ``"step"``.
        log_name: Key of the level in the epoch logs.

    Example:
        >>> import keras, numpy as np, noisewise
        >>> from noisewise import schedules
        >>> model = keras.Sequential([keras.Input((4,)), noisewise.GaussianNoise(1.0),
        ...                           keras.layers.Dense(1)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> cb = noisewise.NoiseScheduler(schedules.linear(1.0, 0.0, steps=2))
        >>> h = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=3, callbacks=[cb], verbose=0)
        >>> h.history["noise_level"]
        [1.0, 0.5, 0.0]
    """

    def __init__(self, schedule: Any, layers: Any = None, by: str = "epoch",
                 log_name: str = "noise_level") -> None:
        super().__init__()
        self.by = check_choice("by", by, ("epoch", "step"))
        if not isinstance(log_name, str) or not log_name:
            raise ValueError(f"`log_name` must be a non-empty string. Received: log_name={log_name!r}")
        self.log_name = log_name
        self.per_layer = isinstance(schedule, dict) and "kind" not in schedule
        if self.per_layer:
            if not schedule:
                raise ValueError("`schedule` must not be an empty dict. Received: schedule={}")
            if layers is not None:
                raise ValueError(
                    "Pass either a per-layer dict of schedules or `layers`, not both. "
                    f"Received: layers={layers!r}"
                )
            self.schedule = {key: get(value) for key, value in schedule.items()}
        else:
            self.schedule = get(schedule)
        schedules = self.schedule.values() if self.per_layer else [self.schedule]
        if self.by == "step" and any(isinstance(s, Adaptive) for s in schedules):
            raise ValueError("An adaptive schedule updates the level after validated epochs: "
                             f"use by='epoch'. Received: by={by!r}")
        if layers is not None:
            if isinstance(layers, (str, keras.layers.Layer)):
                layers = [layers]
            if not isinstance(layers, (list, tuple)) or not layers:
                raise ValueError(
                    "`layers` must be None or a non-empty list of layers or layer names. "
                    f"Received: layers={layers!r}"
                )
        self.layers = layers
        self._groups = []

    # -- targets ---------------------------------------------------------------
    def _resolve(self, item, index):
        all_layers, by_name = index
        layer = by_name.get(item) if isinstance(item, str) else item
        if layer is None:
            names = [layer.name for layer in all_layers if is_noise_layer(layer)]
            raise ValueError(
                f"No layer named {item!r} in model {self.model.name!r} "
                f"(its noise layers: {names}). Received: layers={item!r}"
            )
        if not is_noise_layer(layer):
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) has no `set_level`/"
                f"`get_level`, so its noise level cannot be scheduled. Received: layers={item!r}"
            )
        return layer

    def _build_groups(self):
        index = _layer_index(self.model)
        if self.per_layer:
            groups = []
            for key, schedule in self.schedule.items():
                layer = self._resolve(key, index)
                groups.append((f"{self.log_name}/{layer.name}", schedule, [layer]))
            return groups
        if self.layers is None:
            targets = [layer for layer in index[0] if is_noise_layer(layer)
                       and getattr(layer, "scheduled_by_default", True)]
            if not targets:
                raise ValueError(
                    f"NoiseScheduler found no noise layers (with `set_level`) in model "
                    f"{self.model.name!r}; an augmentation pipeline is driven only when "
                    "named in `layers`. Received: layers=None"
                )
        else:
            targets = [self._resolve(item, index) for item in self.layers]
        return [(self.log_name, self.schedule, targets)]

    # -- setting levels ----------------------------------------------------------
    def _set_levels(self, t):
        synced = False
        for key, schedule, layers in self._groups:
            if isinstance(schedule, Adaptive):  # set from the logs, at epoch end
                continue
            level = schedule(t)
            if not _is_real(level) or not math.isfinite(level):
                raise ValueError(
                    f"Schedule {schedule!r} must return a finite number; at {self.by} {t} "
                    f"it returned {level!r}."
                )
            synced = self._apply(key, schedule, layers, float(level), f"{self.by} {t}", synced)

    def _apply(self, key, schedule, layers, level, when, synced):
        """Set ``level`` on ``layers`` unless already there; returns whether state was synced."""
        if self._current.get(key) == level:
            return synced
        if not synced:
            # JAX: write fit's private state back and mark it stale, so fit
            # re-reads the variables (and the new level) before the next step.
            sync = getattr(self.model, "jax_state_sync", None)
            if sync is not None:
                sync()
        for layer in layers:
            try:
                layer.set_level(level)
            except ValueError as err:
                raise ValueError(
                    f"Schedule {schedule!r} gave level {level} at {when}, "
                    f"which layer {layer.name!r} does not accept: {err}"
                ) from None
        self._current[key] = level
        return True

    def _start_adaptive(self):
        for key, schedule, layers in self._groups:
            if not isinstance(schedule, Adaptive):
                continue
            levels = {layer.name: layer.get_level() for layer in layers}
            if len(set(levels.values())) > 1:
                raise ValueError("The layers an adaptive schedule drives must start at one "
                                 f"level (use a per-layer dict otherwise). Received: {levels}")
            name, level = next(iter(levels.items()))
            self._current[key] = schedule.check_start(level, f"layer {name!r}")

    def _adapt(self, epoch, logs):
        """Next levels from an epoch's logs, for the adaptive groups."""
        validated = any(k.startswith("val_") for k in logs)
        synced = False
        for key, schedule, layers in self._groups:
            if not isinstance(schedule, Adaptive):
                continue
            missing = schedule.missing(logs)
            if missing and (validated or schedule.signal not in logs):
                raise ValueError(
                    f"The adaptive schedule reads the metric {schedule.signal!r} and its "
                    f"validation curve, and epoch {epoch}'s logs lack {missing}. Logs' keys: "
                    f"{sorted(logs)}. Received: signal={schedule.signal!r}")
            if validated:
                self._validated = True
                level = schedule.update(self._current[key], logs)
                synced = self._apply(key, schedule, layers, level, f"epoch {epoch}", synced)

    def on_train_begin(self, logs=None):
        self._groups = self._build_groups()
        self._current = {}
        self._validated = False
        self._start_adaptive()
        optimizer = getattr(self.model, "optimizer", None)
        self._step_offset = 0
        if optimizer is not None:
            self._step_offset = int(keras.ops.convert_to_numpy(optimizer.iterations))
        self._steps_done = 0
        self._batches_this_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._steps_done += self._batches_this_epoch
        self._batches_this_epoch = 0
        if self.by == "epoch":
            self._set_levels(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.by == "step":
            self._set_levels(self._step_offset + self._steps_done + batch)

    def on_train_batch_end(self, batch, logs=None):
        self._batches_this_epoch = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            readings = dict(logs)
            for key, _, _ in self._groups:
                logs[key] = self._current.get(key)  # the level this epoch trained with
            self._adapt(epoch, readings)

    def on_train_end(self, logs=None):
        adaptive = [s for _, s, _ in self._groups if isinstance(s, Adaptive)]
        if adaptive and not self._validated:
            raise ValueError(
                f"The adaptive schedule reads 'val_{adaptive[0].signal}', and no epoch of this "
                "fit was validated: pass `validation_data` (or `validation_split`) to fit. "
                f"Received: signal={adaptive[0].signal!r}")



__all__ = ["NoiseScheduler", "find_noise_layers", "is_noise_layer"]
