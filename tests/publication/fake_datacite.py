"""A local stand-in for DataCite's REST API, served by uvicorn on loopback.

It speaks the part BeamDesk uses: ``POST /dois`` (create; 422 "This DOI has already been
taken" for a known DOI), ``PUT /dois/{doi}`` (update), ``GET /dois/{doi}``, HTTP Basic
auth with the repository id and password, JSON:API bodies of media type
``application/vnd.api+json``, and the ``publish`` event that makes a DOI findable. It also
refuses metadata whose base64 ``xml`` does not validate against the DataCite 4 XSD, as
DataCite does.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import LiveServer

SCHEMA = Path(__file__).parent / "schemas" / "kernel-4" / "metadata.xsd"
JSON_API = "application/vnd.api+json"


def datacite_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


def errors(status: int, title: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"status": str(status), "title": title}]},
        status_code=status,
        media_type=JSON_API,
    )


@dataclass
class FakeDataCite:
    repository: str = "ELETTRA.BEAMDESK"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    prefix: str = "10.80123"
    url: str = ""
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)

    def __post_init__(self) -> None:
        self.schema = datacite_schema()
        self.app = Starlette(
            routes=[
                Route("/dois", self.create, methods=["POST"]),
                Route("/dois/{doi:path}", self.update, methods=["PUT"]),
                Route("/dois/{doi:path}", self.show, methods=["GET"]),
            ]
        )

    def __enter__(self) -> FakeDataCite:
        self._server = LiveServer(self.app)
        self.url = self._server.url
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user == self.repository and password == self.password

    async def _body(self, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        if not self._authorised(request):
            return None, errors(401, "Bad credentials.")
        if request.headers.get("content-type", "").split(";")[0] != JSON_API:
            return None, errors(415, "Content type must be application/vnd.api+json.")
        body = await request.json()
        data = body.get("data", {})
        if data.get("type") != "dois" or not isinstance(data.get("attributes"), dict):
            return None, errors(400, "A dois resource is expected.")
        attributes = data["attributes"]
        doi = str(attributes.get("doi", ""))
        if not doi.lower().startswith(self.prefix + "/"):
            return None, errors(403, "This prefix does not belong to the repository.")
        if "xml" in attributes:
            xml = base64.b64decode(attributes["xml"])
            document = etree.fromstring(xml)
            if not self.schema.validate(document):
                return None, errors(422, f"Invalid XML: {self.schema.error_log.last_error}")
        if attributes.get("event") == "publish" and not attributes.get("url"):
            return None, errors(422, "A findable DOI needs a URL.")
        return attributes, None

    def _answer(self, attributes: dict[str, Any], status: int) -> JSONResponse:
        doi = attributes["doi"].lower()
        record = self.records.get(doi, {})
        state = "findable" if attributes.get("event") == "publish" else record.get("state", "draft")
        record = {
            **record,
            **{k: v for k, v in attributes.items() if k != "event"},
            "doi": doi,
            "state": state,
        }
        self.records[doi] = record
        return JSONResponse(
            {"data": {"id": doi, "type": "dois", "attributes": record}},
            status_code=status,
            media_type=JSON_API,
        )

    async def create(self, request: Request) -> Response:
        self.requests.append(("POST", request.url.path))
        attributes, problem = await self._body(request)
        if problem is not None:
            return problem
        assert attributes is not None
        if attributes["doi"].lower() in self.records:
            return errors(422, "This DOI has already been taken")
        return self._answer(attributes, 201)

    async def update(self, request: Request) -> Response:
        self.requests.append(("PUT", request.url.path))
        attributes, problem = await self._body(request)
        if problem is not None:
            return problem
        assert attributes is not None
        if attributes["doi"].lower() != request.path_params["doi"].lower():
            return errors(400, "The DOI in the body is not the one in the path.")
        return self._answer(attributes, 200)

    async def show(self, request: Request) -> Response:
        record = self.records.get(request.path_params["doi"].lower())
        if record is None:
            return errors(404, "The resource you are looking for doesn't exist.")
        return JSONResponse(
            {"data": {"id": record["doi"], "type": "dois", "attributes": record}},
            media_type=JSON_API,
        )
