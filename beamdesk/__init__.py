"""BeamDesk: the remote office, HDF5 viewer and XRF analysis of a synchrotron facility."""

__version__ = "0.1.0"
