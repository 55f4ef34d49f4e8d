"""A map on disk as the XRF map fit sees it, read through the sandboxed readers.

``fit_map`` accepts any input with ``open_map(dataset)``; this one sends every block
read to a reader worker of the proposal (``map.info`` / ``map.block``), so a job's input
is parsed in the sandbox like everything else users control. It is a small picklable
value: dask ships it to its workers, each of which reads through its own process pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from beamdesk.sandbox.pool import ReaderError, shared_pool


class _RemoteDataset:
    def __init__(self, source: SandboxedMap, dataset: str, info: dict[str, Any]) -> None:
        self.source, self.name = source, dataset
        self.shape = tuple(info["shape"])
        self.chunks = tuple(info["chunks"]) if info["chunks"] else None
        self.dtype = np.dtype(info["dtype"])
        self.ndim = len(self.shape)

    def __getitem__(self, block: tuple[slice, ...]) -> np.ndarray:
        bounds = [
            [s.start or 0, s.stop if s.stop is not None else n]
            for s, n in zip(block, self.shape, strict=False)
        ]
        return self.source.call("map.block", path=self.name, block=bounds)


@dataclass(frozen=True)
class SandboxedMap:
    folder: str  # the proposal folder
    file: str  # relative to it

    def __str__(self) -> str:
        return str(Path(self.folder) / self.file)

    def call(self, op: str, *, path: str, **args: Any) -> Any:
        from beamdesk.xrf.mapfit import MapFitError

        try:
            return shared_pool().call(Path(self.folder), op, self.file, path=path, **args)
        except ReaderError as exc:
            raise MapFitError(f"{self.file}::{path}: {exc.detail}") from None

    @contextmanager
    def open_map(self, dataset: str) -> Iterator[_RemoteDataset]:
        yield _RemoteDataset(self, dataset, self.call("map.info", path=dataset))
