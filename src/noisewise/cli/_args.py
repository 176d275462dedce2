"""Argument helpers shared by the subcommand parsers (argparse only: nothing heavy)."""

import argparse
import math
import sys

from noisewise.cli._errors import UsageError
from noisewise.study.defaults import DEFAULT_STORE

STORE_HELP = f"store file (default ./{DEFAULT_STORE})"
METRIC_HELP = "metric of the table (default val_<first metric>)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors go through the one exit-code map (as UsageError)."""

    def error(self, message):  # argparse would exit 2 itself; keep the usage line on stderr
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


def positive(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer. Received: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1. Received: {value}")
    return value


def seconds(text):
    """argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds. Received: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds. Received: {text!r}")
    return value
