"""/api/docs and /api/redoc over HTTP: the site's strict CSP, no inline script, public."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from beamdesk.web.routes import api_docs
from beamdesk.web.security import CSP

SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)


@pytest.mark.parametrize(
    ("url", "bundle"),
    [("/api/docs", "swagger-ui-bundle.js"), ("/api/redoc", "redoc.standalone.js")],
)
def test_docs_pages_load_only_the_packaged_bundles(client, url: str, bundle: str) -> None:
    r = client.get(url)  # anonymous: the docs are public, like the OpenAPI description
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == CSP
    scripts = SCRIPT.findall(r.text)
    assert scripts, r.text
    assert not any(body.strip() for _, body in scripts), f"inline script on {url}"
    sources = sorted(re.search(r'src="([^"]+)"', attrs).group(1) for attrs, _ in scripts)
    assert sources == sorted([f"/static/app/api-docs/{bundle}", "/static/api-docs.js"])
    assert 'data-openapi-url="/api/openapi.json"' in r.text
    assert "http" not in r.text.replace("http-equiv", "")  # nothing from another host
    for src in sources:
        assert client.get(src).status_code == 200, src


def test_fastapis_own_pages_are_gone(client) -> None:
    for url in ("/docs", "/redoc", "/docs/oauth2-redirect", "/api/docs/oauth2-redirect"):
        assert client.get(url).status_code == 404, url
    assert client.get("/api/openapi.json").json()["info"]["title"] == "BeamDesk"


def test_unbuilt_docs_say_how_to_build_them(client, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(api_docs, "DOCS_DIR", tmp_path / "missing")
    r = client.get("/api/docs")
    assert r.status_code == 200
    assert 'data-testid="api-docs-not-built"' in r.text and "make frontend" in r.text
    assert "<script" not in r.text
