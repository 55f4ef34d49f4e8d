"""X-ray fluorescence analysis: spectrum model, fits, map fits, quantification (PyMca-class).

Pure science: this package imports no other BeamDesk sub-package and no web framework.
"""

from __future__ import annotations

from beamdesk import __version__

__all__ = ["__version__"]
