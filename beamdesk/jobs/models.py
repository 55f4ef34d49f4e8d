"""The ``jobs`` table: one row per analysis job, the single source of truth for its state.

A job moves ``queued → running → done | failed | cancelled``. The row holds everything
needed to run it again from scratch (kind, parameters, inputs), so a server restart can
re-queue it; the computation itself lives on dask.distributed and is found again by
``dask_key`` when the scheduler outlived the server.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from beamdesk.db import Base, UTCDateTime, utcnow
from beamdesk.portal.models import Proposal, User


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


FINAL_STATES = frozenset({JobState.done, JobState.failed, JobState.cancelled})
ACTIVE_STATES = frozenset({JobState.queued, JobState.running})


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_created", "state", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    proposal_id: Mapped[int] = mapped_column(
        ForeignKey("proposals.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    # what the user asked for (input spec, configuration as TOML-shaped JSON, its source)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # proposal-relative input files, for provenance and the job list
    inputs: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[JobState] = mapped_column(
        Enum(JobState, name="job_state", native_enum=False, length=16, validate_strings=True),
        default=JobState.queued,
    )
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    log: Mapped[str] = mapped_column(Text, default="")
    # [{"path": "processed/12-map.nxs", "dataset_id": 7}]
    outputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    dask_key: Mapped[str] = mapped_column(String(128), default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    owner: Mapped[User] = relationship()
    proposal: Mapped[Proposal] = relationship()

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def append_log(self, line: str) -> None:
        """Timestamped lines for the user; never tracebacks (those go to the server log)."""
        stamp = utcnow().strftime("%Y-%m-%d %H:%M:%S")
        self.log = f"{self.log}{stamp}  {line}\n"
