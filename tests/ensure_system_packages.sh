#!/bin/sh
# Installs Debian's chromium (headless browser of the report tests) when it is missing.
# Usage: sh tests/study/ensure_chromium.sh   (root, or password-less sudo)
set -e
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
command -v chromium >/dev/null 2>&1
