"""Thin routes: parse the request, ask beamdesk.portal.access, call the service, answer."""
