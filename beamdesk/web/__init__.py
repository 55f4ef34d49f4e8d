"""The one ASGI application: portal pages, REST API, HDF5 content, viewer and workbench."""
