"""The publication path on SQLite and PostgreSQL: collection, publish, PaNOSC, zip."""

from __future__ import annotations

import io
import json
import zipfile

from fastapi.testclient import TestClient

from beamdesk.db import make_engine, make_sessionmaker
from beamdesk.portal.minting import DraftOnly
from beamdesk.settings import Settings
from beamdesk.web.app import create_app
from tests.publication.conftest import NOW, auth, build_facility


def test_publication_on_each_database(any_settings: Settings) -> None:
    engine = make_engine(any_settings.database_url)
    with make_sessionmaker(engine)() as db:
        facility = build_facility(db, any_settings)
        db.commit()
    engine.dispose()
    app = create_app(any_settings)
    app.state.clock = lambda: NOW
    app.state.minter = DraftOnly("10.80123")
    try:
        with TestClient(app) as client:
            ids = [i for k, i in facility.dataset_ids.items() if k.startswith("20260001/")]
            r = client.post(
                "/api/proposals/20260001/collections",
                headers=auth(facility, "pi"),
                json={"title": "Bronze", "dataset_ids": ids},
            )
            assert r.status_code == 201, r.text
            cid = r.json()["id"]
            r = client.post(f"/api/collections/{cid}/publish", headers=auth(facility, "pi"))
            assert r.status_code == 200, r.text
            doi = r.json()["doi"]
            assert client.get(f"/doi/{doi.upper()}").status_code == 200  # DOIs ignore case
            flt = {
                "where": {
                    "and": [
                        {"creationDate": {"gte": "2026-01-01T00:00:00Z"}},
                        {
                            "variable": "temperature",
                            "operator": "lt",
                            "value": 80,
                            "unit": "celsius",
                        },
                    ]
                }
            }
            got = client.get("/api/panosc/datasets", params={"filter": json.dumps(flt)}).json()
            assert {d["id"] for d in got} == {
                str(facility.dataset_ids["20260001/raw/scan_0001.nxs"]),
                str(facility.dataset_ids["20260003/raw/saxs_0001.nxs"]),
            }
            docs = client.get(
                "/api/panosc/documents",
                params={"filter": json.dumps({"where": {"type": "publication"}})},
            ).json()
            assert [d["pid"] for d in docs] == [doi]
            body = client.get(f"/collections/{cid}/download.zip").content
            assert len(zipfile.ZipFile(io.BytesIO(body)).namelist()) == len(ids)
    finally:
        app.state.engine.dispose()
