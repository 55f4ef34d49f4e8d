"""BeamDesk: the remote office, HDF5 viewer and XRF analysis of a synchrotron facility."""

from importlib.metadata import PackageNotFoundError, version

try:  # the version is written once, in pyproject.toml
    __version__ = version("beamdesk")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
