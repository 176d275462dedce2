"""Preview augmentations as a PNG grid (the library behind ``noisewise augment preview``).

For a pipeline spec, each row is one source image: the original, then
``samples`` augmented draws. For a corruption name, each row is one source
image: the original, then severities 1 to 5.

SPEC is one of: a corruption name (see ``CORRUPTIONS``); a JSON list of
transforms (``'[{"type": "flip", "mode": "horizontal"}]'``); or a path to a
``.json`` or ``.toml`` file holding such a list, or a dict with an ``augment``
list (a study spec's arm: pick it with ``--arm NAME``).

Example:
    >>> from noisewise.augment.preview import preview_grid, load_images
    >>> images, value_range = load_images(dataset="digits", count=2)
    >>> fig = preview_grid("gaussian_noise", images, value_range=value_range, preset="cifar")
    >>> len(fig.axes)
    12
"""

import json
import os

import numpy as np

from noisewise._core.files import atomic_open, png_metadata
from noisewise.augment.corruptions import CORRUPTIONS, corrupt
from noisewise.augment.image import image_pipeline

DATASETS = ("sample_images", "digits")


def load_images(*, image=None, dataset=None, count=2, size=None):
    """Images to preview (uint8-like NumPy batch) and their value range.

    Args:
        image: Path of an image file (read with Pillow, converted to RGB).
        dataset: ``"sample_images"`` (scikit-learn's two 427x640 photos) or
            ``"digits"`` (8x8 handwritten digits, values 0..16, shown upscaled).
        count: Number of images taken from a dataset.
        size: Optional (height, width) to resize photos to (keeps previews fast).
    """
    if (image is None) == (dataset is None):
        raise ValueError("Give exactly one of `image` or `dataset`. "
                         f"Received: image={image!r}, dataset={dataset!r}")
    if image is not None:
        from PIL import Image

        pil = Image.open(image).convert("RGB")
        if size is not None:
            pil = pil.resize((size[1], size[0]))
        return np.asarray(pil)[None], (0, 255)
    if dataset == "sample_images":
        from PIL import Image
        from sklearn.datasets import load_sample_images

        photos = load_sample_images().images[:count]
        if size is not None:
            photos = [np.asarray(Image.fromarray(p).resize((size[1], size[0]))) for p in photos]
        return np.stack(photos), (0, 255)
    if dataset == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits().images[:count]
        return digits[..., None].astype("float32"), (0, 16)
    raise ValueError(
        f"`dataset` must be one of {', '.join(DATASETS)}. Received: dataset={dataset!r}"
    )


def parse_spec(spec, arm=None):
    """A corruption name (str) or a transform list from a name, JSON text or a file."""
    if isinstance(spec, (list, tuple)):
        return list(spec)
    if spec in CORRUPTIONS:
        return spec
    if os.path.exists(spec):
        with open(spec, "rb") as f:
            raw = f.read()
        if spec.endswith(".toml"):
            import tomllib

            data = tomllib.loads(raw.decode())
        else:
            data = json.loads(raw)
    else:
        try:
            data = json.loads(spec)
        except json.JSONDecodeError:
            raise ValueError(
                f"SPEC must be a corruption name ({', '.join(CORRUPTIONS)}), a JSON list of "
                f"transforms, or a .json/.toml file. Received: {spec!r}"
            ) from None
    if isinstance(data, dict) and "arms" in data:
        arms = {a.get("name"): a for a in data["arms"]}
        if arm is None:
            with_aug = [n for n, a in arms.items() if "augment" in a]
            if len(with_aug) != 1:
                raise ValueError(
                    f"The study has arms with `augment`: {with_aug}; choose one with --arm"
                )
            arm = with_aug[0]
        if arm not in arms or "augment" not in arms[arm]:
            raise ValueError(f"No arm {arm!r} with an `augment` list. Arms: {sorted(arms)}")
        data = arms[arm]["augment"]
    elif isinstance(data, dict):
        data = data.get("augment")
    if not isinstance(data, list):
        raise ValueError("The spec file must hold a list of transforms or an `augment` list.")
    return data


def _show(ax, image, value_range, title=None):
    low, high = value_range
    image = np.clip((np.asarray(image, "float32") - low) / (high - low), 0.0, 1.0)
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def preview_grid(spec, images, *, value_range=(0, 255), samples=5, seed=0, preset="imagenet",
                 output=None, arm=None):
    """Draw a grid of augmented (or corrupted) images; save it when ``output`` is given.

    Args:
        spec: Corruption name, transform list, JSON text or spec file (see module doc).
        images: (n, height, width, channels) batch.
        value_range: Range of the pixel values.
        samples: Augmented draws per image (pipelines only).
        seed: Seed for the draws.
        preset: Corruption constants, ``"imagenet"`` or ``"cifar"``.
        output: Optional PNG path, written whole or not at all (a temporary
            file beside it is renamed onto it); it is replaced whatever it
            holds: the command line checks it first (``--force``).
        arm: Arm to take the ``augment`` list from when ``spec`` is a study.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = parse_spec(spec, arm=arm)
    images = np.asarray(images)
    if isinstance(spec, str):
        titles = ["original"] + [f"{spec} s={s}" for s in range(1, 6)]
        columns = [images] + [
            np.asarray(corrupt(images, spec, s, seed=seed, value_range=value_range, preset=preset))
            for s in range(1, 6)
        ]
    else:
        pipeline = image_pipeline(spec, seed=seed, value_range=value_range)
        titles = ["original"] + [f"sample {i + 1}" for i in range(samples)]
        columns = [images] + [pipeline.augment(images) for _ in range(samples)]
    rows, cols = len(images), len(columns)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.8 * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            _show(axes[r][c], columns[c][r], value_range, titles[c] if r == 0 else None)
    fig.tight_layout()
    if output:
        fmt = os.path.splitext(os.fspath(output))[1].lstrip(".").lower() or "png"
        with atomic_open(output, "wb") as f:
            fig.savefig(f, dpi=100, format=fmt,
                        metadata=png_metadata() if fmt == "png" else None)
        plt.close(fig)
    return fig
