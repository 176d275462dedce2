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


def integer(low):
    """argparse type: an integer >= ``low`` (its message names the bound)."""
    what = "a positive integer" if low == 1 else f"an integer >= {low}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}. Received: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}. Received: {value}")
        return value

    parse.__name__ = "positive" if low == 1 else f"integer_at_least_{low}"
    return parse


positive = integer(1)  # argparse type: an integer >= 1


def seconds(text):
    """argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds. Received: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds. Received: {text!r}")
    return value
