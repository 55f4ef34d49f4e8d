"""Liveness for load balancers and benchmarks: no database, no session."""

from __future__ import annotations

from fastapi import APIRouter

import beamdesk

router = APIRouter(tags=["health"])


@router.get("/api/health")
def health() -> dict[str, str]:
    return {"status": "ok", "version": beamdesk.__version__}
