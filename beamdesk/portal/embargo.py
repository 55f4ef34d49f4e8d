"""The data embargo: when a proposal's data become open to everyone (pure date arithmetic)."""

from __future__ import annotations

from datetime import datetime

from beamdesk.portal.models import Proposal
from beamdesk.settings import Settings


def add_years(when: datetime, years: int) -> datetime:
    """Same calendar day ``years`` later; 29 February falls back to the 28th."""
    try:
        return when.replace(year=when.year + years)
    except ValueError:
        return when.replace(year=when.year + years, day=28)


def default_release(last_beamtime_end: datetime, settings: Settings) -> datetime:
    return add_years(last_beamtime_end, settings.publication.embargo_years)


def extended(release_date: datetime, settings: Settings) -> datetime:
    return add_years(release_date, settings.publication.embargo_extension_years)


def apply_default_release(proposal: Proposal, settings: Settings) -> None:
    """Set the release date from the last beamtime, unless the PI already changed it."""
    if not proposal.beamtimes or proposal.embargo_extended:
        return
    last_end = max(b.end for b in proposal.beamtimes)
    proposal.release_date = default_release(last_end, settings)
