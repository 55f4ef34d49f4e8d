"""The ASGI entry point for uvicorn workers: ``uvicorn beamdesk.web.asgi:app``."""

import logging

# Python's warnings become log lines (so JSON logs stay JSON), before the imports that warn.
logging.captureWarnings(True)

from beamdesk.settings import get_settings  # noqa: E402
from beamdesk.web.app import create_app  # noqa: E402

# analysis jobs run next to the server (docs/jobs.md) unless `beamdesk jobs run` runs them
app = create_app(run_jobs=get_settings().jobs.jobs_in_server)
