"""The one error type of the HDF5 layer: an HTTP status and a message for the caller."""

from __future__ import annotations


class H5RequestError(Exception):
    """Something the caller can fix (or may not see); the web layer turns it into a problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
