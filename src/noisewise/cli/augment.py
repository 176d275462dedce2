"""``noisewise augment preview SPEC``: a PNG grid of augmented samples or corruption severities.

SPEC is a corruption name, a JSON list of transforms, or a ``.json`` or
``.toml`` file holding such a list or a study spec (pick its arm with
``--arm NAME``); see :mod:`noisewise.augment.preview`.
"""

import os

from noisewise._core.files import check_output
from noisewise.cli import _choices
from noisewise.cli._errors import EXIT_OK, UsageError

_DESCRIPTION = """Preview augmentations as a PNG grid. For a pipeline spec, each row is one
source image: the original, then SAMPLES augmented draws. For a corruption name,
each row is one source image: the original, then severities 1 to 5. SPEC is a
corruption name, a JSON list of transforms ('[{"type": "flip", "mode":
"horizontal"}]'), or a .json or .toml file holding such a list, or a dict with
an `augment` list (a study spec's arm: pick it with --arm NAME)."""


def add_parser(subparsers):
    augment = subparsers.add_parser("augment", help="augmentation tools")
    commands = augment.add_subparsers(dest="augment_command", required=True)
    p = commands.add_parser(
        "preview", help="draw a grid of augmented samples or corruption severities",
        description=_DESCRIPTION)
    p.add_argument("spec", help="corruption name, JSON list of transforms, or .json/.toml file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="image file to augment")
    source.add_argument("--dataset", choices=_choices.PREVIEW_DATASETS, help="built-in images")
    p.add_argument("-o", "--output", default="augment_preview.png", help="PNG file to write")
    p.add_argument("--force", action="store_true",
                   help="replace an existing -o file that noisewise did not write")
    p.add_argument("--samples", type=int, default=5, help="augmented samples per image")
    p.add_argument("--count", type=int, default=2, help="images taken from --dataset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=_choices.CORRUPTION_PRESETS, default="imagenet",
                   help="corruption constants")
    p.add_argument("--arm", help="arm whose `augment` list to use, for a study spec")
    p.add_argument("--size", type=int, help="resize photos to SIZE x SIZE first")
    p.set_defaults(func=preview)
    return augment


def preview(args):
    """Draw and write the grid; print its path. A bad spec or input is exit 2."""
    inputs = [p for p in (args.image, args.spec) if p and os.path.isfile(p)]
    # Onto an input never; onto a file noisewise did not write only with --force.
    check_output(args.output, protect=[("input", p) for p in inputs], force=args.force)
    # Start-up time: the augmentation layers (Keras) and matplotlib load only to draw.
    from noisewise.augment.preview import load_images, preview_grid

    try:
        images, value_range = load_images(
            image=args.image, dataset=args.dataset, count=args.count,
            size=None if args.size is None else (args.size, args.size),
        )
        preview_grid(args.spec, images, value_range=value_range, samples=args.samples,
                     seed=args.seed, preset=args.preset, output=args.output, arm=args.arm)
    except (ValueError, OSError) as err:
        raise UsageError(f"noisewise augment preview: error: {err}") from err
    print(args.output)
    return EXIT_OK
