"""The one error model (beamdesk.errors): every kind answers with its status, title and
detail, as problem JSON for the API and the error page for browsers; anything else is a
bug, a 500 carrying the request id (also in the log, with the traceback) and nothing of
the exception's text."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from beamdesk import errors
from beamdesk.errors import BeamDeskError
from beamdesk.jobs import service as jobs
from beamdesk.portal import panosc, proposals
from beamdesk.sandbox.pool import ReaderError, reader_error
from beamdesk.xrf.config import ConfigError
from beamdesk.xrf.fit import FitError
from beamdesk.xrf.mapfit import MapFitError
from beamdesk.xrf.physics import PhysicsError
from beamdesk.xrf.quant import QuantError
from beamdesk.xrf.readers import SpectrumReadError

SECRET = "internal-text-7f3a"  # what a bug's exception says; never in an answer

KINDS = sorted(errors.KINDS.values(), key=lambda kind: kind.status)


def _raise_kind(status: int) -> None:
    raise errors.kind_of(status)(f"Detail of a {status}; do this instead.")


def _bug(kind: str) -> None:
    if kind == "zero":
        _ = 1 / 0
    if kind == "key":
        raise KeyError(SECRET)
    if kind == "xrf":
        # The workbench's real fit path, given a configuration that skipped its check (a
        # bug): the engine's own ValueError about the background method.
        from beamdesk.web.routes.xrf_api import fit_payload, parse_config

        cfg = parse_config({"peaks": {"Fe": ["K"]}})
        cfg.fit.background = SECRET
        channels = np.arange(1024.0)
        fit_payload(100 + 1000 * np.exp(-0.5 * ((channels - 640) / 8) ** 2), cfg)
    raise AssertionError(kind)


def test_a_bad_background_in_a_configuration_is_invalid_input() -> None:
    """What the bug above bypasses: the configuration check (a ConfigError, a 422)."""
    from beamdesk.web.routes.xrf_api import parse_config

    with pytest.raises(ConfigError, match="background 'bogus' is not one of"):
        parse_config({"peaks": {"Fe": ["K"]}, "fit": {"background": "bogus"}})


def _too_many() -> None:
    raise errors.TooMany("Slow down; try again in 7 seconds.", headers={"Retry-After": "7"})


@pytest.fixture
def raising_app(app: FastAPI) -> FastAPI:
    """The real app (create_app(settings)) with test-only routes that raise."""
    for prefix in ("/api/test-errors", "/test-errors"):
        app.add_api_route(prefix + "/kind/{status}", _raise_kind)
        app.add_api_route(prefix + "/bug/{kind}", _bug)
        app.add_api_route(prefix + "/too-many", _too_many)
    return app


@pytest.fixture
def http(raising_app: FastAPI) -> Any:
    # The server error middleware re-raises after answering (for the server's own log):
    # the test looks at the answer.
    with TestClient(raising_app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
def test_every_kind_is_a_problem_with_its_status_title_and_detail(
    http: Any, kind: type[BeamDeskError]
) -> None:
    r = http.get(f"/api/test-errors/kind/{kind.status}")
    assert r.status_code == kind.status
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    detail = f"Detail of a {kind.status}; do this instead."
    assert body == {
        "type": "about:blank",
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "message": detail,  # for H5Web
    }


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
def test_a_browser_gets_the_error_page(http: Any, kind: type[BeamDeskError]) -> None:
    r = http.get(f"/test-errors/kind/{kind.status}", headers={"Accept": "text/html"})
    assert r.status_code == kind.status
    assert r.headers["content-type"].startswith("text/html")
    assert f"<h1>{kind.title}</h1>" in r.text
    assert f"Detail of a {kind.status}; do this instead." in r.text


def test_headers_of_an_error_are_sent(http: Any) -> None:
    r = http.get("/api/test-errors/too-many")
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.json()["detail"] == "Slow down; try again in 7 seconds."


@pytest.mark.parametrize("bug", ["zero", "key", "xrf"])
def test_a_bug_is_a_500_with_the_request_id_and_no_internal_text(
    http: Any, caplog: pytest.LogCaptureFixture, bug: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="beamdesk.web"):
        r = http.get(f"/api/test-errors/bug/{bug}")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    rid = r.headers["x-request-id"]
    body = r.json()
    assert body["request_id"] == rid and len(rid) >= 16
    assert body["title"] == "Internal error"
    assert body["detail"].endswith(f"Quote request id {rid}.")
    for leak in (SECRET, "ZeroDivisionError", "KeyError", "ValueError", "Traceback"):
        assert leak not in r.text, leak
    # The log has it all: the request id and the traceback.
    [record] = [rec for rec in caplog.records if rec.name == "beamdesk.web"]
    assert record.request_id == rid  # type: ignore[attr-defined]
    assert record.exc_info is not None
    assert "Traceback" in caplog.text and rid in caplog.text
    expected = {"zero": ZeroDivisionError, "key": KeyError, "xrf": ValueError}[bug]
    assert record.exc_info[0] is expected


def test_a_proxy_request_id_is_the_one_quoted(http: Any) -> None:
    r = http.get("/api/test-errors/bug/zero", headers={"X-Request-ID": "proxy-0042"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "proxy-0042"
    assert r.json()["request_id"] == "proxy-0042"


def test_a_bug_on_a_page_shows_the_request_id(http: Any) -> None:
    r = http.get("/test-errors/bug/key", headers={"Accept": "text/html"})
    assert r.status_code == 500 and r.headers["content-type"].startswith("text/html")
    assert f"Quote request id {r.headers['x-request-id']}." in r.text
    assert SECRET not in r.text


# The domain's exceptions are kinds; plain ValueError/RuntimeError are not.
DOMAIN = [
    (ConfigError, 422),
    (FitError, 422),
    (MapFitError, 422),
    (QuantError, 422),
    (SpectrumReadError, 422),
    (PhysicsError, 422),
    (jobs.JobNotFound, 404),
    (jobs.JobForbidden, 403),
    (jobs.QuotaExceeded, 429),
    (jobs.JobConflict, 409),
    (jobs.InvalidJob, 422),
    (proposals.InvalidRequest, 422),
    (proposals.StateConflict, 409),
    (panosc.FilterError, 422),
    (panosc.FilterTooLarge, 422),
]


@pytest.mark.parametrize(("cls", "status"), DOMAIN, ids=lambda x: getattr(x, "__name__", x))
def test_domain_exceptions_answer_with_their_kind(cls: type[BeamDeskError], status: int) -> None:
    exc = cls("something is wrong")
    assert isinstance(exc, BeamDeskError) and exc.status == status


def test_portal_refusals_are_sentences() -> None:
    denied = proposals.PermissionDenied("may not submit")
    assert denied.status == 403 and denied.detail == "You may not submit."
    assert proposals.InvalidRequest("a proposal needs a title").detail == (
        "A proposal needs a title."
    )


def test_bugs_are_not_kinds() -> None:
    for exc in (ValueError("x"), RuntimeError("x"), KeyError("x"), TypeError("x")):
        assert not isinstance(exc, BeamDeskError)


@pytest.mark.parametrize("status", [403, 404, 409, 413, 422, 503, 500])
def test_a_reader_error_is_of_the_kind_of_the_workers_status(status: int) -> None:
    exc = reader_error(status, "Said by the worker.")
    assert isinstance(exc, ReaderError) and exc.status == status
    assert isinstance(exc, errors.kind_of(status))
    assert exc.detail == "Said by the worker."


def test_the_reader_worker_tells_a_damaged_file_from_its_own_bug(tmp_path: Any) -> None:
    """In the sandboxed worker: libhdf5 refusing a damaged file is a 422 naming none of its
    words; a bug of ours (here a call with an argument the operation does not take, a
    TypeError) is the worker's 500, and the worker goes on serving."""
    import h5py

    from beamdesk.sandbox.pool import ReaderLimits, ReaderPool

    folder = tmp_path / "20260001"
    (folder / "raw").mkdir(parents=True)
    with h5py.File(folder / "raw" / "good.h5", "w") as f:
        f["d"] = np.arange(4)
    data = bytearray((folder / "raw" / "good.h5").read_bytes())
    data[8:60] = bytes(range(52))  # the superblock, scrambled behind a valid signature
    (folder / "raw" / "damaged.h5").write_bytes(bytes(data))
    pool = ReaderPool(ReaderLimits(reply_timeout=30))
    try:
        with pytest.raises(ReaderError) as damaged:
            pool.call(folder, "h5.meta", "raw/damaged.h5", path="/")
        assert damaged.value.status == 422 and isinstance(damaged.value, errors.Invalid)
        assert "superblock" not in damaged.value.detail
        with pytest.raises(ReaderError) as bug:
            pool.call(folder, "h5.meta", "raw/good.h5", path="/", no_such_argument=SECRET)
        assert bug.value.status == 500 and SECRET not in bug.value.detail
        assert not isinstance(bug.value, errors.Invalid)
        assert pool.call(folder, "h5.paths", "raw/good.h5", path="/")["body"]  # still serving
    finally:
        pool.close()


def test_a_form_choice_the_form_never_offers_is_a_message_not_a_500(
    app: FastAPI, sessions: Any
) -> None:
    """Form pages catch only the portal's InvalidRequest: a choice outside the <select>
    (a hand-made request) is one, not a ValueError caught with everything else."""
    from beamdesk.portal.models import ProposalState
    from tests.factories import make_proposal, make_world

    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, "20260003", ProposalState.draft)
        db.commit()
    with TestClient(app) as client:
        pi = {"Authorization": f"Bearer {world.tokens['pi']}"}
        r = client.post("/proposals/new", data={"title": "T", "category": "bogus"}, headers=pi)
        assert r.status_code == 200, r.text
        assert "&#39;bogus&#39; is not a choice of this form." in r.text
        r = client.post(
            "/proposals/20260003/members", data={"username": "pi", "role": "bogus"}, headers=pi
        )
        assert r.status_code == 200, r.text
        assert "&#39;bogus&#39; is not a choice of this form." in r.text
