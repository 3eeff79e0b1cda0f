#!/bin/sh
# Headless Chromium from Debian's packages, for tests/serving/test_browser_client.py: playwright (the
# Python package) drives /usr/bin/chromium; nothing downloads a browser. Idempotent and quiet:
# does nothing when chromium is already there.
set -eu

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq chromium >/dev/null

if [ ! -x "$CHROMIUM" ]; then
    echo "ensure_chromium: apt-get installed chromium but $CHROMIUM is missing" >&2
    exit 1
fi
