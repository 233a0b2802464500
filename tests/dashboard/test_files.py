"""The dashboard's files as the API serves them, what the package carries, and the vendored uPlot."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from pathlib import Path

import httpx

from stratumkit.api.app import ApiApp
from stratumkit.dashboard.files import PANEL_ROUTES, dashboard_file
from tests.api.test_routes_fake import FakeLeases, FakePool
from tests.support.processes import REPO

STATIC = REPO / "stratumkit" / "dashboard" / "static"
UPLOT = STATIC / "vendor" / "uplot"


def static_names() -> list[str]:
    return sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())


def client(token: str | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=ApiApp(FakePool(), FakeLeases(), api_token=token), client=("127.0.0.1", 1))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


async def test_every_file_is_served_with_its_type_and_the_page_s_headers() -> None:
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
    async with client("s3cret") as http:
        for name in static_names():
            response = await http.get(f"/dashboard/{name}")
            assert response.status_code == 200, name
            assert response.text == (STATIC / name).read_text(encoding="utf-8")
            wanted = types.get(Path(name).suffix, "text/plain")
            assert response.headers["content-type"] == f"{wanted}; charset=utf-8", name
            assert response.headers["content-security-policy"].startswith("default-src 'self'")
            assert response.headers["x-content-type-options"] == "nosniff"
        page = await http.get("/")
        assert page.status_code == 200 and page.text == (STATIC / "index.html").read_text(encoding="utf-8")
        for missing in ("/dashboard/nothing.js", "/dashboard/../files.py", "/dashboard/vendor", "/index.html"):
            assert (await http.get(missing)).status_code == 404, missing
    assert dashboard_file("../files.py") is None and dashboard_file("vendor/uplot") is None


async def test_the_page_refers_only_to_files_it_has() -> None:
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    refs = re.findall(r'(?:src|href)="/dashboard/([^"]+)"', page)
    assert {"dashboard.js", "dashboard.css", "vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css"} <= set(
        refs
    )
    for ref in refs:
        assert dashboard_file(ref) is not None, ref


async def test_the_page_never_asks_for_a_route_the_api_lacks() -> None:
    async with client() as http:
        session = (await http.get("/dashboard/session")).json()
        assert set(session["routes"]) <= set(PANEL_ROUTES)
        for panel, path in PANEL_ROUTES.items():
            status = (await http.get(path)).status_code
            assert (status != 404) == (panel in session["routes"]), (panel, status)


def test_the_package_data_carries_every_static_file() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["stratumkit"]
    for name in static_names():
        path = f"dashboard/static/{name}"
        matches = [p for p in patterns if fnmatch.fnmatch(path, p) and p.count("/") == path.count("/")]
        assert matches, f"{path} is in no package-data pattern: a wheel would leave it out"


def test_the_vendored_uplot_is_the_release_its_version_file_names() -> None:
    version = (UPLOT / "VERSION").read_text(encoding="utf-8")
    assert version.startswith("uPlot 1.6.32 (MIT licence")
    sums = dict(re.findall(r"dist/(\S+)\s+sha256 ([0-9a-f]{64})", version))
    assert set(sums) == {"uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in sums.items():
        assert hashlib.sha256((UPLOT / name).read_bytes()).hexdigest() == digest, name
    assert (
        (UPLOT / "uPlot.iife.min.js")
        .read_text(encoding="utf-8")
        .startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    )
    assert "The MIT License (MIT)" in (UPLOT / "LICENSE").read_text(encoding="utf-8")
