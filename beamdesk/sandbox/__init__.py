"""Isolation for what users control: sandboxed reader workers and session sandboxes."""
