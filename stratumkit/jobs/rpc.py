"""Bitcoin Core JSON-RPC over HTTP, from trio (httpx runs on trio through anyio).

Rules:
- Credentials come from the URL (`http://user:pass@127.0.0.1:18443`) or from a cookie file
  (`.cookie` holds "user:password"). The cookie is read on first use and read again after a 401:
  bitcoind writes a new one each time it starts. Credentials are never in `repr()`, in an error
  message or in a log line: the client keeps the URL without them.
- Every failure is typed. `RPCError(code, message)`: the node answered with a JSON-RPC error.
  `NodeUnreachable` (a `SourceUnavailable`, so callers retry): no usable answer came — connection
  refused, timeout (`NodeTimeout`), connection lost, credentials refused (`RPCAuthError`), or an
  HTTP answer that is not JSON-RPC (such as the 503 bitcoind sends when its work queue is full).
- bitcoind answers a JSON-RPC error with HTTP 500 (404 for an unknown method) AND a JSON body, so
  the body decides, not the status.
- No proxy from the environment is used: node credentials go to the node only.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from stratumkit.causes import connection_refused

from .sources import SourceUnavailable

__all__ = [
    "TRANSIENT_RPC_CODES",
    "NodeRPC",
    "NodeTimeout",
    "NodeUnreachable",
    "RPCAuthError",
    "RPCClient",
    "RPCError",
]

#: JSON-RPC error codes that mean "not now" rather than "no": RPC_CLIENT_NOT_CONNECTED (-9),
#: RPC_CLIENT_IN_INITIAL_DOWNLOAD (-10) and RPC_IN_WARMUP (-28).
TRANSIENT_RPC_CODES = frozenset({-9, -10, -28})
_SNIPPET = 200


class RPCError(Exception):
    """The node answered the call with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, method: str = "") -> None:
        self.code = code
        self.message = message
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}node error {code}: {message}")

    @property
    def transient(self) -> bool:
        """Whether the same call may succeed later (node warming up, syncing, without peers)."""
        return self.code in TRANSIENT_RPC_CODES


class NodeUnreachable(SourceUnavailable):
    """No usable answer from the node: down, slow, unreachable, or not speaking JSON-RPC."""


class NodeTimeout(NodeUnreachable):
    """The node did not answer within the call's timeout (it may be busy, hung, or holding a
    longpoll open as asked)."""


class RPCAuthError(NodeUnreachable):
    """The node refused the credentials (HTTP 401/403); a restart may have rewritten the cookie."""


class RPCClient(Protocol):
    """What a node's user needs of its client: `NodeRPC`, or an in-memory node in unit tests."""

    url: str  # without credentials

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any: ...


class NodeRPC:
    """A JSON-RPC client of one node; close it with `aclose()` (or use `async with`).

    Its connections belong to the trio run that opened them: use one NodeRPC per `trio.run`.
    """

    def __init__(
        self,
        url: str,
        *,
        cookie_file: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("node RPC URL must be http(s)://[user:password@]host:port[/path]")
        if parts.query or parts.fragment:
            raise ValueError("node RPC URL must not carry a query or fragment")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("node RPC URL has an invalid port") from None
        has_password = parts.username is not None or parts.password is not None
        if has_password and cookie_file is not None:
            raise ValueError("give credentials in the URL or a cookie file, not both")
        if not has_password and cookie_file is None:
            raise ValueError("the node needs credentials: put user:password in the URL or give its cookie file")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        netloc = host if port is None else f"{host}:{port}"
        #: The node's URL without credentials: safe to show and log.
        self.url = urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
        self.cookie_file = Path(cookie_file) if cookie_file is not None else None
        self.timeout = timeout
        self._auth: tuple[str, str] | None = (
            (unquote(parts.username or ""), unquote(parts.password or "")) if has_password else None
        )
        self._ids = itertools.count(1)
        self._client = httpx.AsyncClient(trust_env=False, timeout=timeout)

    def __repr__(self) -> str:
        auth = f"cookie_file={str(self.cookie_file)!r}" if self.cookie_file else "auth='password'"
        return f"NodeRPC({self.url!r}, {auth})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> NodeRPC:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call `method` and return its `result`; see the module rules for what it raises."""
        limit = self.timeout if timeout is None else timeout
        body = json.dumps({"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": list(params)}).encode()
        refreshed = False
        if self.cookie_file is not None and self._auth is None:
            self._auth = self._read_cookie()
            refreshed = True
        while True:
            response = await self._post(method, body, limit)
            if response.status_code not in (401, 403):
                return self._result(method, response)
            if self.cookie_file is None or refreshed:
                source = (
                    f"the cookie file {self.cookie_file}" if self.cookie_file else "the user and password in the URL"
                )
                raise RPCAuthError(f"node at {self.url} refused {source} (HTTP {response.status_code})")
            # bitcoind writes a new cookie on every start: read it again, once.
            self._auth = self._read_cookie()
            refreshed = True

    def _read_cookie(self) -> tuple[str, str]:
        assert self.cookie_file is not None
        try:
            text = self.cookie_file.read_text().strip()
        except FileNotFoundError:
            raise NodeUnreachable(
                f"cookie file {self.cookie_file} does not exist (the node writes it when it "
                f"starts and removes it when it stops: is it running?)"
            ) from None
        except OSError as exc:
            raise NodeUnreachable(f"cannot read cookie file {self.cookie_file}: {exc.strerror}") from None
        user, sep, password = text.partition(":")
        if not sep:
            raise NodeUnreachable(f"cookie file {self.cookie_file} does not hold user:password")
        return user, password

    async def _post(self, method: str, body: bytes, timeout: float) -> httpx.Response:
        assert self._auth is not None
        try:
            return await self._client.post(
                self.url,
                content=body,
                auth=httpx.BasicAuth(*self._auth),
                headers={"Content-Type": "application/json"},
                timeout=timeout,
            )
        except httpx.TimeoutException:
            raise NodeTimeout(f"no answer from node at {self.url} to {method} within {timeout:g} s") from None
        except httpx.ConnectError as exc:
            if connection_refused(exc):
                raise NodeUnreachable(f"connection refused by {self.url} (is the node running?)") from None
            raise NodeUnreachable(f"cannot connect to node at {self.url}: {_describe(exc)}") from None
        except httpx.HTTPError as exc:  # read/write errors, protocol errors, bad encodings
            raise NodeUnreachable(
                f"connection to node at {self.url} failed during {method}: {_describe(exc)}"
            ) from None

    def _result(self, method: str, response: httpx.Response) -> Any:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict) and ("result" in answer or "error" in answer):
            error = answer.get("error")
            if error is None:
                return answer.get("result")
            if isinstance(error, dict):
                code = error.get("code")
                message = error.get("message")
                raise RPCError(
                    code if isinstance(code, int) and not isinstance(code, bool) else -1,
                    message if isinstance(message, str) else json.dumps(error)[:_SNIPPET],
                    method,
                )
            raise RPCError(-1, json.dumps(error)[:_SNIPPET], method)
        snippet = response.text.strip()[:_SNIPPET] or "(empty body)"
        raise NodeUnreachable(
            f"node at {self.url} answered {method} with HTTP {response.status_code} and no JSON-RPC body: {snippet}"
        )


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
