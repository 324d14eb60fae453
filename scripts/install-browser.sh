#!/usr/bin/env bash
# Headless Chromium and its WebDriver from the Debian packages, for the console test
# (tests/integration/serving/test_console_browser.py). Idempotent: nothing to do when both
# are on PATH. Needs root (CI runs as root) or sudo.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing chromium and chromium-driver (Debian packages) for the console test"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
command -v chromium && command -v chromedriver
