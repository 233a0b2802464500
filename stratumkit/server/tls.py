"""The pool's TLS server contexts, made from the configured certificate chain and key: one for
the TLS stratum listener (tls_port) and one for the HTTPS API (api_tls), from the same files.

Rules:
* TLS 1.2 and newer only.
* A certificate or key that does not load is a `ConfigError` naming tls_cert and tls_key, raised
  when the context is made: at start, before anything listens.
"""

from __future__ import annotations

import ssl

from stratumkit.failures import ConfigError

__all__ = ["api_context", "load_certificate", "stratum_context"]


def load_certificate(context: ssl.SSLContext, cert: str, key: str) -> None:
    """Load the PEM chain `cert` and its private key `key` into `context`."""
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"tls_cert / tls_key: cannot load {cert} with {key} ({reason}):"
            " give a PEM certificate chain and its private key"
        ) from None


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
