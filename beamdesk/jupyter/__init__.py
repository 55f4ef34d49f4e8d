"""JupyterHub next to the portal: sign-in tickets, the hub's configuration, user workspaces,
generated notebooks, and the portal's client for the hub's REST API.

Only ``authenticator`` and ``hub_config`` import JupyterHub itself; they run inside the hub
process. Everything else is imported by the web layer and works without JupyterHub installed.
"""
