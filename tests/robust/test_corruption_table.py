"""corruption_table on one-channel images: colour-only corruptions skipped with a reason, or refused."""

import keras
import numpy as np
import pytest

from noisewise.augment import CORRUPTIONS
from noisewise.robust import corruption_table
from noisewise.robust.evaluate import CorruptionResult, _corruption_fns


@pytest.fixture(scope="module")
def digits_model():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    clf = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    model.set_weights([clf.coef_.T.astype("float32"), clf.intercept_.astype("float32")])
    return model, x[1000:1100], y[1000:1100]


def test_default_corruptions_skip_saturate_on_one_channel_and_keep_it_on_rgb():
    fns, skipped = _corruption_fns(None, (0.0, 1.0), {}, channels=1)
    assert set(skipped) == {"saturate"} and "needs 3 channels; the images have 1" in skipped["saturate"]
    assert set(fns) == set(CORRUPTIONS) - {"saturate"}  # snow, frost and spatter take grey images
    fns, skipped = _corruption_fns(None, (0.0, 1.0), {}, channels=3)
    assert skipped == {} and set(fns) == set(CORRUPTIONS)
    _, skipped = _corruption_fns(None, (0.0, 1.0), {}, channels=2)
    assert set(skipped) == {"saturate", "snow", "frost", "spatter"}


def test_named_colour_corruption_on_one_channel_is_refused_before_any_work(digits_model):
    model, x, y = digits_model
    with pytest.raises(ValueError, match=r"Corruption 'saturate' needs 3 channels; the images have 1\. "
                                         r"Received: corruptions=\['contrast', 'saturate'\]"):
        corruption_table(model, x, y, ["contrast", "saturate"], [1], image_shape=(8, 8, 1))


def test_skipped_corruptions_are_listed_under_the_table():
    result = CorruptionResult([1], {"contrast": [0.9]}, 0.95, skipped={"saturate": "needs 3 channels"})
    assert str(result).splitlines()[-1] == "skipped saturate: needs 3 channels"
    assert CorruptionResult([1], {}, 0.9).skipped == {}


@pytest.mark.slow  # every corruption once: each compiles its own program on JAX
def test_corruption_table_on_grey_digits_without_arguments(digits_model):
    model, x, y = digits_model
    result = corruption_table(model, x, y, severities=[5], image_shape=(8, 8, 1), preset="cifar")
    assert set(result.accuracy) == set(CORRUPTIONS) - {"saturate"} and list(result.skipped) == ["saturate"]
    assert "skipped saturate" in str(result)
    assert all(0.0 <= a[0] <= 1.0 for a in result.accuracy.values())
    # Severity 5 of the CIFAR constants hurts these digits for most corruptions: real work was done.
    assert np.mean([a[0] < result.clean_accuracy for a in result.accuracy.values()]) > 0.5
