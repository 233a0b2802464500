#!/usr/bin/env bash
# Make sure Debian's chromium and chromium-driver are installed for the dashboard's browser test.
#
# The test starts its own headless chromium through chromedriver (selenium) and stops it after;
# this script only installs the two binaries. It uses Debian's packages, needs root (or sudo) and
# no input, and does nothing when both are already on PATH or in /usr/bin. Nothing is downloaded
# outside the package manager: selenium is told where chromedriver is.
set -euo pipefail

find_binary() {
    command -v "$1" 2>/dev/null && return 0
    if [ -x "/usr/bin/$1" ]; then echo "/usr/bin/$1"; return 0; fi
    return 1
}

if browser=$(find_binary chromium) && driver=$(find_binary chromedriver); then
    echo "chromium: $browser ($("$driver" --version))"
    exit 0
fi

# shellcheck source=scripts/debian-packages.sh
source "$(dirname "$0")/debian-packages.sh"
install_debian_packages "chromium and chromedriver" chromium chromium-driver

browser=$(find_binary chromium) || { echo "chromium still not found after installing" >&2; exit 1; }
driver=$(find_binary chromedriver) || { echo "chromedriver still not found after installing" >&2; exit 1; }
echo "chromium: $browser ($("$driver" --version))"
