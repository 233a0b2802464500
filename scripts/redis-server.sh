#!/usr/bin/env bash
# Make sure a redis-server binary (Redis >= 6.2: XAUTOCLAIM) is installed for the queue tests.
#
# The tests start their own private redis-server on a free loopback port and stop it after; this
# script only installs the binary. It uses Debian's package (bookworm ships 7.0), needs root (or
# sudo) and no input, and does nothing when a recent enough redis-server is already on PATH or in
# /usr/bin, /usr/local/bin or /usr/sbin. Debian's package may also start a system service on port
# 6379; the tests do not use it.
set -euo pipefail

find_redis() {
    command -v redis-server 2>/dev/null && return 0
    for candidate in /usr/bin/redis-server /usr/local/bin/redis-server /usr/sbin/redis-server; do
        if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
    done
    return 1
}

recent_enough() {
    # "Redis server v=7.0.15 sha=..." -> 7.0.15
    local version
    version=$("$1" --version | sed -n 's/.* v=\([0-9][0-9.]*\).*/\1/p')
    [ -n "$version" ] || return 1
    local major=${version%%.*} rest=${version#*.}
    local minor=${rest%%.*}
    [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -ge 2 ]; }
}

if binary=$(find_redis) && recent_enough "$binary"; then
    echo "redis-server: $binary ($("$binary" --version))"
    exit 0
fi

# shellcheck source=scripts/debian-packages.sh
source "$(dirname "$0")/debian-packages.sh"
install_debian_packages "redis-server >= 6.2" redis-server

binary=$(find_redis) || { echo "redis-server still not found after installing" >&2; exit 1; }
recent_enough "$binary" || { echo "$binary is older than 6.2" >&2; exit 1; }
echo "redis-server: $binary ($("$binary" --version))"
