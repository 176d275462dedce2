#!/bin/sh
# Installs the Debian programs some tests use for real, when they are missing:
# chromium (headless browser of the report tests), espeak-ng (real speech for
# the audio SNR tests) and sox (an independent SNR measurement).
# Usage: sh tests/ensure_system_packages.sh   (root, or password-less sudo)
set -e
missing=""
for program in chromium espeak-ng sox; do
    command -v "$program" >/dev/null 2>&1 || missing="$missing $program"
done
if [ -z "$missing" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
for program in $missing; do
    command -v "$program" >/dev/null 2>&1
done
