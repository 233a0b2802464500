"""Jobs checked at submit, so a bad one is refused with its reason instead of failing on a rig
after it has taken lease time.

Rules:

- A job is an OpenAI request body plus ``"kind"``: ``"embeddings"`` or ``"chat.completions"``
  (:data:`stratumkit.inference.wire.JOB_KINDS`). The body is parsed by the same strict parsers the
  rigs' job runner uses (:mod:`stratumkit.inference.wire`), so what passes here is what a rig accepts:
  unknown fields, ``stream: true``, ``n > 1``, token-id input and the like are refused.
- The model must be one the queue's live leases can serve: the lease's ``model`` selector if it has
  one, and every model its drafted rigs declared. A queue with no live lease, or whose leased rigs
  declare no models, checks the shape only (the job may wait for a lease).
- Pure: no I/O. :class:`RequestError` (HTTP 400) carries the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stratumkit.inference.errors import InvalidRequestError
from stratumkit.inference.wire import EMBEDDINGS, JOB_KINDS, parse_chat_request, parse_embeddings_request

from .errors import RequestError

__all__ = ["check_job"]


def check_job(payload: Mapping[str, Any], queue: str, served: Iterable[str] | None) -> None:
    """Refuse a job a rig would refuse; ``served`` is the models the queue's leases can serve
    (None: no lease constrains the model)."""
    kind = payload.get("kind")
    if kind is None:
        raise RequestError(f"a job needs a 'kind': one of {', '.join(map(repr, JOB_KINDS))}")
    if kind not in JOB_KINDS:
        raise RequestError(f"unknown job kind {kind!r}: use one of {', '.join(map(repr, JOB_KINDS))}")
    body = {k: v for k, v in payload.items() if k != "kind"}
    try:
        model = parse_embeddings_request(body).model if kind == EMBEDDINGS else parse_chat_request(body).model
    except InvalidRequestError as exc:
        raise RequestError(f"invalid {kind} job: {exc}") from None
    models = None if served is None else sorted(set(served))
    if models and model not in models:
        raise RequestError(f"no rig leased to queue {queue!r} serves model {model!r}; they serve {', '.join(models)}")
