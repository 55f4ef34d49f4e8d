"""``beamdesk jobs list|show|cancel`` against a real database."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from beamdesk.cli import app
from beamdesk.db import utcnow
from beamdesk.jobs import service
from beamdesk.portal.models import User
from beamdesk.settings import Settings
from tests.jobs.conftest import DS, NUMBER, build_world


def test_list_show_cancel(
    settings: Settings, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    build_world(settings, sessions)
    with sessions() as db:
        pi = db.query(User).filter_by(username="pi").one()
        job = service.submit(
            db,
            settings,
            pi,
            NUMBER,
            service.JobRequest("xrf_map", f"raw/map.h5::{DS}", None, "raw/fit.cfg"),
            utcnow(),
        )
        db.commit()
        job_id = job.id
    monkeypatch.setenv("BEAMDESK_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BEAMDESK_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("BEAMDESK_VAR", str(settings.var_dir))
    runner = CliRunner()

    listed = runner.invoke(app, ["jobs", "list", "--json", "--proposal", NUMBER])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert row["id"] == job_id and row["state"] == "queued" and row["owner"] == "pi"
    table = runner.invoke(app, ["jobs", "list", "--state", "queued"])
    assert table.exit_code == 0 and "raw/map.h5" in table.output

    shown = runner.invoke(app, ["jobs", "show", str(job_id)])
    detail = json.loads(shown.output)
    assert detail["parameters"]["config_file"] == "raw/fit.cfg" and "queued by pi" in detail["log"]

    cancelled = runner.invoke(app, ["jobs", "cancel", str(job_id)])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    again = runner.invoke(app, ["jobs", "cancel", str(job_id)])
    assert again.exit_code == 2 and "already ended" in again.output
    assert runner.invoke(app, ["jobs", "show", "999"]).exit_code == 2
    assert runner.invoke(app, ["jobs", "list", "--state", "bogus"]).exit_code == 2
