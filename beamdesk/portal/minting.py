"""DOI minting backends: DataCite's REST API, or "draft only" when none is configured.

``BEAMDESK_DATACITE_URL`` (the REST API's base URL), ``…_REPOSITORY`` (repository id),
``…_PASSWORD`` and ``…_PREFIX`` (e.g. 10.12345) select the DataCite backend; without them
BeamDesk reserves draft DOIs under the prefix (default DataCite's test prefix 10.5072) and
registers nothing, so a facility can try publication before it has a DataCite account.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Protocol

import httpx

from beamdesk.errors import BadGateway
from beamdesk.portal.datacite import Metadata, to_json, to_xml
from beamdesk.settings import DataCiteSection

TEST_PREFIX = "10.5072"
JSON_API = "application/vnd.api+json"


class MintingError(BadGateway):
    """The registration agency refused or could not be reached; the message says why."""


@dataclass(frozen=True)
class MintResult:
    doi: str
    state: str  # "draft" or "findable", as DataCite names its DOI states


class Minter(Protocol):
    @property
    def prefix(self) -> str: ...

    def doi_for(self, suffix: str) -> str: ...

    def register(self, meta: Metadata, *, update: bool) -> MintResult: ...


@dataclass(frozen=True)
class DraftOnly:
    """Reserves DOIs locally in the draft state; nothing is sent anywhere."""

    prefix: str = TEST_PREFIX

    def doi_for(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    def register(self, meta: Metadata, *, update: bool) -> MintResult:
        return MintResult(meta.doi, "draft")


@dataclass(frozen=True)
class DataCiteRest:
    """DataCite's REST API: POST /dois to create, PUT /dois/{doi} to update.

    The ``publish`` event makes the DOI findable at once; the record carries both the JSON
    attributes and the XML (base64), as DataCite's documentation recommends for full
    schema 4 fidelity.
    """

    url: str
    repository: str
    password: str
    prefix: str
    event: str = "publish"
    timeout: float = 30.0

    def doi_for(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    def _payload(self, meta: Metadata) -> dict[str, object]:
        attributes = to_json(meta) | {
            "xml": base64.b64encode(to_xml(meta).encode()).decode("ascii"),
        }
        if self.event:
            attributes["event"] = self.event
        return {"data": {"id": meta.doi, "type": "dois", "attributes": attributes}}

    def register(self, meta: Metadata, *, update: bool) -> MintResult:
        headers = {"content-type": JSON_API, "accept": JSON_API}
        base = self.url.rstrip("/")
        try:
            with httpx.Client(
                auth=(self.repository, self.password), timeout=self.timeout, headers=headers
            ) as client:
                if update:
                    response = client.put(f"{base}/dois/{meta.doi}", json=self._payload(meta))
                else:
                    response = client.post(f"{base}/dois", json=self._payload(meta))
                    if response.status_code == 422 and "taken" in response.text:
                        # Created earlier (e.g. a retry after a lost answer): update instead.
                        response = client.put(f"{base}/dois/{meta.doi}", json=self._payload(meta))
        except httpx.HTTPError as exc:
            raise MintingError(f"DataCite could not be reached ({exc.__class__.__name__})") from exc
        if response.status_code not in (200, 201):
            raise MintingError(f"DataCite answered {response.status_code}: {_errors(response)}")
        attributes = response.json().get("data", {}).get("attributes", {})
        return MintResult(
            attributes.get("doi", meta.doi).lower() if attributes.get("doi") else meta.doi,
            attributes.get("state", "findable"),
        )


def _errors(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors", [])
        return "; ".join(str(e.get("title", e)) for e in errors)[:300] or response.reason_phrase
    except ValueError:
        return response.reason_phrase


def minter_for(datacite: DataCiteSection) -> Minter:
    """DataCite's REST API when its address and repository are set, else draft DOIs only."""
    prefix = datacite.prefix or TEST_PREFIX
    if datacite.url and datacite.repository:
        return DataCiteRest(
            url=datacite.url,
            repository=datacite.repository,
            password=datacite.password,
            prefix=prefix,
        )
    return DraftOnly(prefix)
