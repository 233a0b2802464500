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

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium and chromedriver are missing and this is not a Debian-like system:" \
         "install them with your package manager" >&2
    exit 1
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        as_root=(sudo -n)
    else
        echo "installing chromium needs root (or sudo)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver

browser=$(find_binary chromium) || { echo "chromium still not found after installing" >&2; exit 1; }
driver=$(find_binary chromedriver) || { echo "chromedriver still not found after installing" >&2; exit 1; }
echo "chromium: $browser ($("$driver" --version))"
