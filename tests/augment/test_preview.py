"""Preview grids (the ``augment preview`` command: tests/cli/test_cli_augment.py)."""

import json

import numpy as np
import pytest
from PIL import Image

from noisewise.augment.preview import load_images, parse_spec, preview_grid

FLIP = [{"type": "flip", "mode": "horizontal"}, {"type": "gaussian_noise", "stddev": 2}]


def test_corruption_grid_has_original_plus_five_severities(tmp_path):
    images, value_range = load_images(dataset="digits", count=3)
    out = tmp_path / "grid.png"
    fig = preview_grid("gaussian_blur", images, value_range=value_range, preset="cifar", output=str(out))
    assert len(fig.axes) == 3 * 6
    assert [ax.get_title() for ax in fig.axes[:2]] == ["original", "gaussian_blur s=1"]
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size[0] > png.size[1]


def test_pipeline_grid_from_inline_json(tmp_path):
    images, value_range = load_images(dataset="digits", count=2)
    fig = preview_grid(json.dumps(FLIP), images, value_range=value_range, samples=3, seed=1)
    assert len(fig.axes) == 2 * 4


def test_parse_spec_sources(tmp_path):
    assert parse_spec("contrast") == "contrast"
    assert parse_spec(FLIP) == FLIP
    path = tmp_path / "aug.json"
    path.write_text(json.dumps({"augment": FLIP}))
    assert parse_spec(str(path)) == FLIP
    study = tmp_path / "study.toml"
    study.write_text(
        '[study]\nname = "s"\n[[arms]]\nname = "base"\n[[arms]]\nname = "aug"\n'
        'augment = [{type = "flip", mode = "horizontal"}]\n'
    )
    assert parse_spec(str(study)) == [{"type": "flip", "mode": "horizontal"}]
    assert parse_spec(str(study), arm="aug") == [{"type": "flip", "mode": "horizontal"}]
    with pytest.raises(ValueError, match="No arm 'base' with an `augment` list"):
        parse_spec(str(study), arm="base")
    with pytest.raises(ValueError, match="SPEC must be a corruption name"):
        parse_spec("not a spec")


def test_load_images_sources_and_errors(tmp_path):
    photos, value_range = load_images(dataset="sample_images", size=(32, 48))
    assert photos.shape == (2, 32, 48, 3) and value_range == (0, 255)
    path = tmp_path / "one.png"
    Image.fromarray(photos[0]).save(path)
    single, _ = load_images(image=str(path))
    np.testing.assert_array_equal(single[0], photos[0])
    with pytest.raises(ValueError, match="exactly one of `image` or `dataset`"):
        load_images()
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        load_images(dataset="mnist")
