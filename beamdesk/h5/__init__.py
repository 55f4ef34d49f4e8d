"""HDF5 content: confined paths, h5grove-compatible content, downsampling, exports."""
