"""The user office: people, proposals and their lifecycle, access rules, the catalogue,
publication (DOIs, citations, embargo) and the PaNOSC search API.

Knows the database, not the web: routes in ``beamdesk.web`` call these services.
"""
