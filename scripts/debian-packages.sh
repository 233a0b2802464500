# Sourced by the scripts that install a Debian package the tests run for real (redis-server.sh,
# chromium.sh): `install_debian_packages WHAT PACKAGE...` installs with apt-get as root (or
# `sudo -n`), without input, or exits 1 saying why it cannot; WHAT names the need in messages.

install_debian_packages() {
    local what=$1
    shift
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$what is missing and this is not a Debian-like system: install it with your package manager" >&2
        exit 1
    fi
    local as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            as_root=(sudo -n)
        else
            echo "installing $what needs root (or sudo)" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" apt-get install -y -q --no-install-recommends "$@"
}
