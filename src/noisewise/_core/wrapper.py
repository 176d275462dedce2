"""The base of noisewise's training wrappers: a keras.Model around another model.

Adversarial training, the Pi-model, mixup and the noise-contrast detector
each train a user's model with their own loss (``compute_loss``, so Keras'
stateless step runs them on every backend and under ``jax.vmap``). What they
share is here: the wrapped model (a config dict is deserialised, anything but
a ``keras.Model`` refused), inference through it, and its shapes, so code that
inspects a model (a default loss chosen from the output units, a summary, the
study's pre-flight) treats the wrapper as the model itself.
"""

import keras


class ModelWrapper(keras.Model):
    """A ``keras.Model`` that trains ``model`` (``self.model``) and predicts with it.

    Args:
        model: A ``keras.Model``, or its serialised config.
        **kwargs: Passed to ``keras.Model``.
    """

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, dict):
            model = keras.saving.deserialize_keras_object(model)
        if not isinstance(model, keras.Model):
            raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
        self.model = model

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    @property
    def input_shape(self):
        return self.model.input_shape

    @property
    def output_shape(self):
        return self.model.output_shape

    def compute_output_shape(self, input_shape):
        return self.model.compute_output_shape(input_shape)
