"""The ASGI entry point for uvicorn workers: ``uvicorn beamdesk.web.asgi:app``."""

from beamdesk.web.app import create_app

app = create_app(run_jobs=True)  # analysis jobs run next to the server (docs/jobs.md)
