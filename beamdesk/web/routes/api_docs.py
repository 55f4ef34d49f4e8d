"""The REST API's documentation pages: Swagger UI at /api/docs, ReDoc at /api/redoc.

FastAPI's own pages load both from a CDN with an inline script, which fails offline and
under the CSP. Here `make frontend` copies the published bundles into static/app/api-docs/
(frontend/build.sh), and a small page loads them with static/api-docs.js, which reads the
OpenAPI URL from data- attributes: no inline script, and the site's strict policy as is
(its style-src already allows the inline styles both renderers set). Public, like the
OpenAPI description itself. No OAuth2 redirect page: the API declares no OAuth2 scheme
(session cookie or Bearer token), so Swagger UI never starts an OAuth2 flow.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from beamdesk.web.frontend import APP_DIR, URL_PREFIX

router = APIRouter()

DOCS_DIR = APP_DIR / "api-docs"
DOCS_URL = URL_PREFIX + "api-docs/"
OPENAPI_URL = "/api/openapi.json"
# Per page: its title, the bundle that renders it and the stylesheet it needs, if any.
PAGES = {
    "swagger": ("API · Swagger UI", "swagger-ui-bundle.js", "swagger-ui.css"),
    "redoc": ("API · ReDoc", "redoc.standalone.js", None),
}


def docs_page(request: Request, kind: str) -> Response:
    title, script, stylesheet = PAGES[kind]
    needed = [script] + ([stylesheet] if stylesheet else [])
    context = {
        "title": title,
        "kind": kind,
        "openapi_url": OPENAPI_URL,
        "built": all((DOCS_DIR / name).is_file() for name in needed),
        "script": DOCS_URL + script,
        "stylesheet": DOCS_URL + stylesheet if stylesheet else None,
        "favicon": DOCS_URL + "favicon-32x32.png",
    }
    return request.app.state.templates.TemplateResponse(request, "api_docs.html", context)


@router.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
def swagger_ui(request: Request) -> Response:
    return docs_page(request, "swagger")


@router.get("/api/redoc", response_class=HTMLResponse, include_in_schema=False)
def redoc(request: Request) -> Response:
    return docs_page(request, "redoc")
