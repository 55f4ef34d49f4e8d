"""``beamdesk demo``: a small but realistic facility to try every part of BeamDesk.

Two beamlines, an account per role, a proposal in every state of the lifecycle (walked
through the real services, so each has its history), NeXus data for the proposals that
collected some, and the catalogue indexed at the end. Running it again adds only what is
missing, so ``make run`` can call it every time.
"""

from __future__ import annotations

from beamdesk.demo.facility import create_demo

__all__ = ["create_demo"]
