"""Two real regtest nodes on loopback, driven synchronously (for session fixtures), and blocks
solved against their templates.

The node is the Bitcoin SV regtest bitcoind that scripts/regtest-node.sh installs. It answers
getblocktemplate only with a peer (hence the second node, connected to the first) and with a recent
tip (hence the 101 blocks mined at start). Password auth goes through -rpcauth (a salted hash on
the command line) so that the node also writes its cookie file: both kinds of auth work at once.
"""

from __future__ import annotations

import base64
import hmac
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stratumkit.bench.ports import free_ports
from stratumkit.chain import (
    BlockTemplate,
    Network,
    address_to_script,
    assemble_block,
    build_coinbase,
    serialize_header,
)
from stratumkit.chain.merkle import fold_branch
from stratumkit.hashing import hash_to_int, scan_nonces, sha256d
from stratumkit.jobs.rpc import NodeRPC
from tests.support.ports import PortTaken, retry_on_bind_failure

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = ROOT / "scripts" / "regtest-node.sh"
RPC_USER = "stratumkit"
#: A P2PKH regtest address of a throwaway key hash: nobody spends these coins.
PAYOUT_ADDRESS = "msmX6cUqLo2QVgosymKmQK2A3HxtCeCEJx"
PAYOUT_SCRIPT = address_to_script(PAYOUT_ADDRESS, Network.REGTEST)
NODE_OPTIONS = (
    "-regtest",
    "-server=1",
    "-listen=1",
    "-bind=127.0.0.1",
    "-rpcbind=127.0.0.1",
    "-rpcallowip=127.0.0.1",
    "-dnsseed=0",
    "-discover=0",
    "-printtoconsole=0",
    "-disablewallet=1",
    "-rpcthreads=8",
    # What this node needs to start and to mine (see scripts/regtest-node.sh):
    "-excessiveblocksize=10000000000",
    "-maxstackmemoryusageconsensus=0",
    "-minminingtxfee=0.00000500",
)


class NodeFailed(RuntimeError):
    """A regtest node did not start, answer, or stop as expected."""


def install_bitcoind() -> Path:
    """Run the install script (idempotent) and return the binary's path."""
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", str(INSTALL_SCRIPT), "install"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if done.returncode != 0:
        raise NodeFailed(
            f"{INSTALL_SCRIPT.name} install failed (exit {done.returncode}):\n{done.stderr.strip()[-2000:]}"
        )
    path = Path(done.stdout.strip().splitlines()[-1])
    if not os.access(path, os.X_OK):
        raise NodeFailed(f"{INSTALL_SCRIPT.name} install printed {path}, which is not executable")
    return path


#: What bitcoind prints when a port it was given is taken (P2P, then RPC).
BIND_FAILURES = ("Unable to bind to", "Unable to start HTTP server")


class NodePortTaken(NodeFailed, PortTaken):
    """bitcoind exited at start because another process holds one of its ports."""


class RPCFailure(RuntimeError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"node error {code}: {message}")
        self.code = code


def plain_call(port: int, password: str, method: str, *params: Any, timeout: float = 10.0) -> Any:
    """One blocking JSON-RPC call with http.client (no trio, for sync fixtures)."""
    token = base64.b64encode(f"{RPC_USER}:{password}".encode()).decode()
    body = json.dumps({"jsonrpc": "1.0", "id": 0, "method": method, "params": list(params)})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            "POST",
            "/",
            body,
            {"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        answer = json.loads(data)
    except ValueError:
        raise NodeFailed(f"{method}: HTTP {response.status}: {data[:200]!r}") from None
    if answer.get("error"):
        raise RPCFailure(answer["error"]["code"], answer["error"]["message"])
    return answer["result"]


class RegtestNode:
    """One bitcoind process with its own datadir and ports."""

    def __init__(
        self,
        bitcoind: Path,
        datadir: Path,
        p2p_port: int,
        rpc_port: int,
        password: str,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.bitcoind = bitcoind
        self.datadir = datadir
        self.p2p_port = p2p_port
        self.rpc_port = rpc_port
        self.password = password
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        datadir.mkdir(parents=True, exist_ok=True)
        salt = secrets.token_hex(16)
        digest = hmac.new(salt.encode(), password.encode(), "sha256").hexdigest()
        self._rpcauth = f"-rpcauth={RPC_USER}:{salt}${digest}"

    @property
    def cookie_path(self) -> Path:
        return self.datadir / "regtest" / ".cookie"

    @property
    def log_path(self) -> Path:
        return self.datadir / "regtest" / "bitcoind.log"

    def call(self, method: str, *params: Any, timeout: float = 10.0) -> Any:
        return plain_call(self.rpc_port, self.password, method, *params, timeout=timeout)

    def start(self, *, timeout: float = 30.0) -> None:
        if self.process is not None and self.process.poll() is None:
            raise NodeFailed(f"node {self.datadir.name} is already running")
        command = [
            str(self.bitcoind),
            *NODE_OPTIONS,
            f"-datadir={self.datadir}",
            f"-port={self.p2p_port}",
            f"-rpcport={self.rpc_port}",
            self._rpcauth,
            *self.extra,
        ]
        with (self.datadir / "stderr.txt").open("ab") as stderr:  # the child keeps its own copy
            stderr_start = stderr.tell()
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = (self.datadir / "stderr.txt").read_bytes()[stderr_start:].decode(errors="replace")
                failed = NodePortTaken if any(text in said for text in BIND_FAILURES) else NodeFailed
                raise failed(
                    f"node {self.datadir.name} exited with {self.process.returncode} at start:\n{self._tail()}"
                )
            try:
                self.call("getblockcount", timeout=2.0)
                return
            except (OSError, RPCFailure, NodeFailed) as exc:  # refused, or -28 warming up
                last = str(exc)
            time.sleep(0.05)
        self.stop()
        raise NodeFailed(f"node {self.datadir.name} did not answer RPC within {timeout:g} s ({last}):\n{self._tail()}")

    def stop(self, *, kill: bool = False, timeout: float = 20.0) -> None:
        """SIGTERM (or SIGKILL) and wait; a node that does not stop in time is killed."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """SIGSTOP: the node holds connections but answers nothing (a hung node)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def _tail(self) -> str:
        parts = []
        for path in (self.datadir / "stderr.txt", self.log_path):
            if path.exists():
                parts.append(f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(parts) or "(no log)"


class RegtestNetwork:
    """Node 1 (the pool's node) and node 2 (its peer, `-connect`ed to node 1)."""

    def __init__(self, bitcoind: Path, datadir: Path) -> None:
        self.bitcoind = bitcoind
        self.datadir = datadir
        self.password = secrets.token_hex(16)
        self._use_ports(free_ports(4))

    def _use_ports(self, ports: list[int]) -> None:
        """bitcoind cannot bind port 0 and say which port it got: it is given ports picked free."""
        p2p1, rpc1, p2p2, rpc2 = ports
        self.node1 = RegtestNode(self.bitcoind, self.datadir / "node1", p2p1, rpc1, self.password)
        self.node2 = RegtestNode(
            self.bitcoind, self.datadir / "node2", p2p2, rpc2, self.password, (f"-connect=127.0.0.1:{p2p1}",)
        )

    # What tests use ------------------------------------------------------------------------

    @property
    def rpc_url(self) -> str:
        return f"http://{RPC_USER}:{self.password}@127.0.0.1:{self.node1.rpc_port}"

    @property
    def rpc_url2(self) -> str:
        return f"http://{RPC_USER}:{self.password}@127.0.0.1:{self.node2.rpc_port}"

    @property
    def url_without_auth(self) -> str:
        return f"http://127.0.0.1:{self.node1.rpc_port}"

    @property
    def cookie_path(self) -> Path:
        return self.node1.cookie_path

    @property
    def rpc(self) -> NodeRPC:
        """A new NodeRPC of node 1 (password auth); close it in the trio run that uses it."""
        return NodeRPC(self.rpc_url, timeout=10.0)

    def start(self) -> None:
        """Start both nodes; on ports taken between the pick and bitcoind's bind, on new ones."""
        retry_on_bind_failure(self._start_on, 4)
        if self.node1.call("getblockcount") < 101:
            # Leaves initial download (the genesis block is old) and matures a coinbase.
            self.node1.call("generatetoaddress", 101, PAYOUT_ADDRESS)
        self.wait_connected()
        self.wait_synced()

    def _start_on(self, ports: list[int]) -> None:
        self._use_ports(ports)
        try:
            self.node1.start()
            self.node2.start()
        except NodePortTaken:
            self.stop()
            raise

    def stop(self) -> None:
        for node in (self.node1, self.node2):  # both at once: each takes about 2 s
            if node.process is not None and node.process.poll() is None:
                node.resume()  # a paused node cannot act on SIGTERM
                node.process.send_signal(signal.SIGTERM)
        for node in (self.node1, self.node2):
            node.stop()

    def stop_node1(self, *, kill: bool = False) -> None:
        self.node1.stop(kill=kill)

    def start_node1(self, *, wait_peer: bool = True) -> None:
        self.node1.start()
        if wait_peer:
            self.wait_connected()

    def wait_connected(self, timeout: float = 20.0) -> None:
        """Until node 1 has its peer (without one, getblocktemplate answers -9)."""
        self._wait(
            lambda: self.node1.call("getconnectioncount") >= 1,
            timeout,
            "node 2 to connect to node 1",
        )

    def wait_synced(self, timeout: float = 20.0) -> None:
        self._wait(
            lambda: self.node1.call("getbestblockhash") == self.node2.call("getbestblockhash"),
            timeout,
            "both nodes on one tip",
        )

    @staticmethod
    def _wait(check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise NodeFailed(f"timed out after {timeout:g} s waiting for {what}")


# Blocks -----------------------------------------------------------------------------------------

EXTRANONCE1 = bytes.fromhex("0badc0de")


def block_for(
    template: BlockTemplate,
    *,
    tag: bytes = b"/stratumkit test/",
    solved: bool = True,
    extranonce2: bytes | None = None,
) -> tuple[bytes, str]:
    """A block for `template` paying PAYOUT_SCRIPT: (block bytes, block hash in display hex).

    solved=True scans nonces until the header meets the template's target (regtest: about every
    second nonce); solved=False picks a nonce whose hash does NOT meet it.
    """
    parts = build_coinbase(template, PAYOUT_SCRIPT, extranonce1_size=4, extranonce2_size=4, pool_tag=tag)
    coinbase = parts.join(EXTRANONCE1, extranonce2 or secrets.token_bytes(4))
    root = fold_branch(sha256d(coinbase), list(template.merkle_branch))
    ntime = max(template.curtime, template.mintime)
    header76 = serialize_header(template.version, template.prevhash, root, ntime, template.nbits, 0)[:76]
    if solved:
        found = scan_nonces(header76, 0, 1 << 20, template.network_target, max_found=1)
        assert found, "no nonce in 2**20 meets the regtest target"
        nonce = found[0]
    else:
        nonce = next(
            n
            for n in range(1 << 20)
            if hash_to_int(sha256d(header76 + n.to_bytes(4, "little"))) > template.network_target
        )
    header = header76 + nonce.to_bytes(4, "little")
    return assemble_block(template, header, coinbase), sha256d(header)[::-1].hex()
