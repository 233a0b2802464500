"""The dashboard's static files, read from the installed package (a wheel carries them).

`dashboard_file(name)` answers only names of files that are in ``static/``: the table of names
is built from the package's own listing, so no request path reaches the file system.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

__all__ = ["INDEX", "PANEL_ROUTES", "StaticFile", "dashboard_file"]

#: The page served at ``/``.
INDEX = "index.html"
#: Routes the page reads only where the API has them: panel name -> path.
PANEL_ROUTES = {"blocks": "/v1/blocks", "history": "/v1/history", "policy": "/v1/policy"}

_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
}
_PLAIN = b"text/plain; charset=utf-8"


@dataclass(frozen=True)
class StaticFile:
    name: str
    text: str
    content_type: bytes


def _walk(folder: Traversable, prefix: str) -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            found.update(_walk(entry, f"{prefix}{entry.name}/"))
        elif entry.is_file():
            found[prefix + entry.name] = entry
    return found


def _content_type(name: str) -> bytes:
    base = name.rsplit("/", 1)[-1]
    return _TYPES.get(base[base.rfind(".") :], _PLAIN) if "." in base else _PLAIN


@cache
def _loaded() -> dict[str, StaticFile]:
    entries = _walk(resources.files(__package__).joinpath("static"), "")
    return {name: StaticFile(name, entry.read_text("utf-8"), _content_type(name)) for name, entry in entries.items()}


def dashboard_file(name: str) -> StaticFile | None:
    """The packaged file `name` (a path under ``static/``, such as ``vendor/uplot/LICENSE``), or None."""
    return _loaded().get(name)
