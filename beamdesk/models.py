"""Every table of BeamDesk, imported in one place for Alembic and for create-on-start."""

from beamdesk.jobs.models import Job  # noqa: F401
from beamdesk.jupyter.signin import HubTicket  # noqa: F401
from beamdesk.portal.collections import Collection, CollectionItem  # noqa: F401
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
