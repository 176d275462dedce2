"""A run's model, compiled with its optimizer: the exact initial state every executor starts from.

Both executors start a run from :func:`prepare_model` (the vectorised one
stacks the states of such models), so they train the same models.
"""

import json

import keras

from noisewise.optimizers import GradientNoise
from noisewise.study.execute.types import RunPlan
from noisewise.study.models import build_model, noise_seed


def make_optimizer(train: dict, noise: list, seed: int, arm: str) -> keras.optimizers.Optimizer:
    """The optimizer of ``[train]``, wrapped in GradientNoise when the arm asks for it."""
    optimizer = keras.optimizers.get({
        "class_name": train["optimizer"],
        "config": {"learning_rate": train["learning_rate"], **train["optimizer_options"]},
    })
    for i, entry in enumerate(noise):
        if entry["type"] == "gradient":
            args = {k: v for k, v in entry.items() if k != "type"}
            optimizer = GradientNoise(optimizer, seed=noise_seed(seed, arm, i), **args)
    return optimizer


def default_loss(model: keras.Model) -> str:
    """Binary cross-entropy for one (sigmoid) output unit, else sparse categorical."""
    units = model.output_shape[-1]
    return "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"


def prepare_model(plan: RunPlan) -> keras.Model:
    """The run's model, compiled, with its optimizer built: its exact initial state."""
    train = plan.train
    # No global seeding here: built-in models seed every initializer and noise
    # layer explicitly, and user builders run under a seeded Keras (see
    # noisewise.study.models).
    model = build_model(plan.model, plan.arm.noise, plan.data, plan.seed, plan.arm.name,
                        base_dir=plan.base_dir)
    loss = default_loss(model) if train["loss"] == "auto" else train["loss"]
    model.compile(optimizer=make_optimizer(train, plan.arm.noise, plan.seed, plan.arm.name),
                  loss=loss, metrics=list(train["metrics"]))
    model.optimizer.build(model.trainable_variables)
    return model


def state_variables(model: keras.Model) -> list:
    """The variables that make up a compiled model's training state: weights,
    non-trainable variables (noise seeds and levels) and optimizer slots."""
    return [*model.trainable_variables, *model.non_trainable_variables,
            *model.optimizer.variables]


def program_key(plan: RunPlan, noise: list | None = None) -> str:
    """Everything that shapes a run's compiled program, as a string; seeds and
    weights are state. ``noise`` replaces the arm's noise entries (a vectorised
    executor leaves out the levels it holds as state)."""
    where = str(plan.base_dir) if "builder" in plan.model else None  # user code may differ
    noise = plan.arm.noise if noise is None else noise
    return json.dumps([plan.model, plan.train, noise, plan.data.input_shape,
                       plan.data.num_classes, where], sort_keys=True, default=str)
