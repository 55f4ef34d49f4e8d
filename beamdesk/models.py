"""Every table of BeamDesk, imported in one place for Alembic and for create-on-start."""

from beamdesk.portal.models import (  # noqa: F401
    ApiToken,
    AuditEvent,
    Beamline,
    BeamlineStaff,
    Beamtime,
    Dataset,
    Proposal,
    ProposalMember,
    Review,
    Sample,
    Transition,
    User,
)
