"""The pool's TLS server contexts, made from the configured certificate chain and key: one for
the TLS stratum listener (tls_port) and one for the HTTPS API (api_tls), from the same files.

Rules:
* TLS 1.2 and newer only.
* A certificate or key that does not load is a `ConfigError` naming tls_cert and tls_key, raised
  when the context is made: at start, before anything listens.
* `reload_certificate` (SIGHUP) reads both files once, loads them into a scratch context first,
  and only when they load there into each live context, in place: a connection takes its
  certificate from its context when it is accepted, so new connections get the new one and
  existing ones keep theirs; a pair that does not load changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from stratumkit.failures import ConfigError

__all__ = ["api_context", "fingerprint", "load_certificate", "reload_certificate", "stratum_context"]


def load_certificate(context: ssl.SSLContext, cert: str, key: str) -> None:
    """Load the PEM chain `cert` and its private key `key` into `context`."""
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise _unloadable(cert, key, exc) from None


def _unloadable(cert: str, key: str, exc: ssl.SSLError | OSError) -> ConfigError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ConfigError(
        f"tls_cert / tls_key: cannot load {cert} with {key} ({reason}): give a PEM certificate chain and its"
        " private key"
    )


def stratum_context(cert: str, key: str) -> ssl.SSLContext:
    """The server context of the TLS stratum listener."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_certificate(context, cert, key)
    return context


def api_context(cert: str, key: str) -> ssl.SSLContext:
    """The server context of the HTTPS API (hypercorn's settings: ALPN h2 and http/1.1)."""
    from stratumkit.asgi import https_context  # hypercorn: only a process serving the API needs it

    context = https_context()
    load_certificate(context, cert, key)
    return context


def reload_certificate(contexts: Sequence[ssl.SSLContext], cert: str, key: str) -> str:
    """Load `cert` and `key` again into every context in `contexts` (see the module rules);
    returns the new certificate's fingerprint. ConfigError, with every context untouched, when
    the pair does not load."""
    try:
        cert_pem, key_pem = Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as exc:
        raise ConfigError(f"tls_cert / tls_key: cannot read {exc.filename} ({exc.strerror})") from None
    with _snapshot(cert_pem) as cert_copy, _snapshot(key_pem) as key_copy:
        scratch = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            scratch.load_cert_chain(cert_copy, key_copy)
        except (ssl.SSLError, OSError) as exc:
            raise _unloadable(cert, key, exc) from None
        for context in contexts:
            context.load_cert_chain(cert_copy, key_copy)
    return fingerprint(cert_pem)


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the first certificate of a PEM chain, in hex (what `openssl x509 -fingerprint
    -sha256` shows, without the colons)."""
    text = cert_pem.decode("ascii", errors="replace")
    begin = text.index(ssl.PEM_HEADER)
    end = text.index(ssl.PEM_FOOTER, begin) + len(ssl.PEM_FOOTER)
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(text[begin:end])).hexdigest()


@contextlib.contextmanager
def _snapshot(data: bytes) -> Iterator[str]:
    """A path holding `data`, readable by this process only, gone on exit: both loads of a reload
    read the same bytes, whatever happens to the operator's file meanwhile."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("stratumkit-tls")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pem"
        path.write_bytes(data)
        yield str(path)
