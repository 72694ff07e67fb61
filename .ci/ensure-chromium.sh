#!/usr/bin/env bash
# Installs Debian's chromium for the headless report-rendering test (needs root; best effort).
set -u
command -v chromium >/dev/null 2>&1 && exit 0
[ "$(id -u)" = 0 ] || exit 1
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1
command -v chromium >/dev/null 2>&1
