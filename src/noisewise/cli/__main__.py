"""``python -m noisewise.cli``: the same as the ``noisewise`` console script."""

import sys

from noisewise.cli import main

sys.exit(main())
