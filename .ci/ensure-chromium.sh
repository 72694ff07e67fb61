#!/usr/bin/env bash
# Installs Debian's chromium for the headless report-rendering test (tests/test_report_browser.py).
# Best effort: needs root and apt; without chromium that test skips and says why.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: cannot install chromium here (needs root and apt-get)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Bounded waits: a hung mirror must not hold up the whole test run.
timeout 600 apt-get update -qq >/dev/null 2>&1
timeout 900 apt-get install -y -qq chromium >/dev/null 2>&1
command -v chromium >/dev/null 2>&1
