"""``beamdesk.client``: the API client, kept importable under its old name.

The code is the ``beamdesk-client`` distribution (``client/``, module ``beamdesk_client``),
which a notebook environment installs alone (httpx and numpy only); the server depends on it.
"""

from beamdesk_client import BeamDeskError, Client

__all__ = ["BeamDeskError", "Client"]
