"""Analysis jobs: rows in the database, computations on dask.distributed (see docs/jobs.md)."""
