"""Micro-benchmark of the per-share protocol cost: ``python -m stratumkit.protocol.bench``.

The pool's budget is <= 50 us of CPU per accepted share in total; the protocol's part
(receive_data + parse of one ``mining.submit`` line, then serializing the reply) should be a
few microseconds of it. Numbers are the best of several rounds, in ns per operation.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from .client import ClientConnection
from .events import Notify, Submit
from .server import ServerConnection

#: A share as cpuminer writes it (its submit format string, one share).
SUBMIT_LINE = (
    b'{"method": "mining.submit", "params": ["bc1qexampleaddress0000000000000000000.rig1", '
    b'"1a2b3c", "00000000", "5e9a2b7c", "12345678"], "id":4}\n'
)


def _authorized_server() -> ServerConnection:
    server = ServerConnection()
    server.receive_data(
        b'{"id": 1, "method": "mining.subscribe", "params": ["bench/1.0"]}\n'
        b'{"id": 2, "method": "mining.authorize", "params": ["bench", "x"]}\n'
    )
    server.respond_subscribe(1, "08000002", 4)
    server.respond(2, True)
    server.data_to_send()
    return server


def _best_ns(operation: Callable[[], object], count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(count):
            operation()
        best = min(best, (time.perf_counter_ns() - start) / count)
    return best


def measure(count: int = 20_000, rounds: int = 5) -> dict[str, float]:
    """ns per operation on the per-share path, and a few neighbours."""
    server = _authorized_server()
    receive, respond, respond_error, drain = (
        server.receive_data,
        server.respond,
        server.respond_error,
        server.data_to_send,
    )
    parse = accept = reject = send = float("inf")
    for _ in range(rounds):
        # Every cpuminer share is id 4: `count` of them wait for an answer after this loop.
        start = time.perf_counter_ns()
        for _ in range(count):
            receive(SUBMIT_LINE)
        parse = min(parse, (time.perf_counter_ns() - start) / count)
        start = time.perf_counter_ns()
        for _ in range(count):
            respond(4, True)
        accept = min(accept, (time.perf_counter_ns() - start) / count)
        for _ in range(count):
            receive(SUBMIT_LINE)
        start = time.perf_counter_ns()
        for _ in range(count):
            respond_error(4, 23)
        reject = min(reject, (time.perf_counter_ns() - start) / count)
        drain()
        for _ in range(count):
            receive(SUBMIT_LINE)
        start = time.perf_counter_ns()
        for _ in range(count):
            respond(4, True)
            drain()
        send = min(send, (time.perf_counter_ns() - start) / count)
    assert type(receive(SUBMIT_LINE)[0]) is Submit and server.awaiting_reply == 1

    notify = Notify(
        "1a2b3c",
        "00" * 32,
        "01" * 60,
        "02" * 80,
        ("03" * 32,) * 12,
        "20000000",
        "1703a30c",
        "5e9a2b7c",
        True,
    )

    def send_notify() -> None:
        server.send_notify(notify)
        drain()

    client = ClientConnection()
    subscribe_id = client.subscribe("bench/1.0")
    client.receive_data(
        b'{"id":%d,"result":[[["mining.notify","ae6812eb"]],"08000002",4],"error":null}\n' % subscribe_id
    )
    client.data_to_send()

    def client_submit() -> None:
        client.submit("rig1", "1a2b3c", "00000001", "5e9a2b7c", "12345678")
        client.data_to_send()

    return {
        "submit parse: receive_data(line) -> Submit": parse,
        "reply: respond(id, True)": accept,
        "reply: respond_error(id, 23)": reject,
        "reply: respond(id, True) + data_to_send()": send,
        "per accepted share (parse + reply + data_to_send)": parse + send,
        "send_notify (line cached in the Notify)": _best_ns(send_notify, count, rounds),
        "client: submit() + data_to_send()": _best_ns(client_submit, count, rounds),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=20_000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the best one counts)")
    args = parser.parse_args(argv)
    for name, ns in measure(args.count, args.rounds).items():
        print(f"{ns:10.0f} ns  {name}")


if __name__ == "__main__":
    main()
