"""Headless Chromium for the report tests: render a local HTML file, dump its DOM
after the load event, and take a screenshot."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ENSURE = Path(__file__).resolve().parents[1] / "ensure_system_packages.sh"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio"]
_FOUND = {}


def chromium():
    """Path of the chromium binary, installing Debian's package if missing (else skip)."""
    if "path" not in _FOUND:
        path = shutil.which("chromium")
        why = None
        if path is None:
            try:
                done = subprocess.run(["sh", str(ENSURE)], check=False, capture_output=True,
                                      text=True, timeout=900)
                why = (done.stderr or done.stdout).strip()[-300:]
            except (OSError, subprocess.TimeoutExpired) as e:
                why = str(e)
            path = shutil.which("chromium")
        _FOUND["path"], _FOUND["why"] = path, why
    if _FOUND["path"] is None:
        pytest.skip(f"chromium is not installed and {ENSURE.name} could not install it "
                    f"(apt-get install chromium): {_FOUND['why']}")
    return _FOUND["path"]


def render(html_path, screenshot=None, size=(1280, 2000), timeout=120):
    """The DOM of ``html_path`` after load (str); writes a PNG screenshot if asked."""
    with tempfile.TemporaryDirectory() as profile:
        args = [chromium(), *FLAGS, f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}", "--dump-dom"]
        if screenshot is not None:
            args.append(f"--screenshot={screenshot}")
        done = subprocess.run(args + [Path(html_path).resolve().as_uri()], check=False,
                              capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
