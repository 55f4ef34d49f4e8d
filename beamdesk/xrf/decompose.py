"""PCA and NMF of XRF maps with scikit-learn.

PCA is streamed (IncrementalPCA over chunk-aligned blocks: two passes, never the whole map);
NMF works on a spatially binned map, which keeps memory bounded for large maps and raises the
counts per spectrum where the multiplicative updates behave better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from beamdesk.xrf.mapfit import open_dataset, plan_blocks


@dataclass
class Decomposition:
    components: np.ndarray  # n_components × channels
    scores: np.ndarray  # map shape × n_components
    explained: np.ndarray | None
    method: str


def bin_map(data: np.ndarray, factor: int) -> np.ndarray:
    """Sum factor×factor pixel squares of a (H, W, C) map (edges trimmed)."""
    if factor <= 1:
        return data
    h, w, c = data.shape
    h2, w2 = h // factor, w // factor
    d = data[: h2 * factor, : w2 * factor].reshape(h2, factor, w2, factor, c)
    return d.sum(axis=(1, 3))


def pca(
    path: str,
    dataset: str,
    n_components: int = 4,
    *,
    channels: slice | None = None,
    sqrt: bool = True,
) -> Decomposition:
    """Incremental PCA over the map (√counts stabilises Poisson variance when `sqrt`)."""
    from sklearn.decomposition import IncrementalPCA

    ipca = IncrementalPCA(n_components=n_components)
    sel = channels or slice(None)
    with open_dataset(path, dataset) as ds:
        blocks = plan_blocks(ds.shape, ds.chunks, ds.dtype.itemsize)

        def rows(block: tuple[slice, ...]) -> np.ndarray:
            y = np.asarray(ds[block], dtype=np.float64)[..., sel]
            y = y.reshape(-1, y.shape[-1])
            return np.sqrt(y) if sqrt else y

        pending: list[np.ndarray] = []
        for block in blocks:
            pending.append(rows(block))
            if sum(p.shape[0] for p in pending) >= n_components:
                ipca.partial_fit(np.vstack(pending))
                pending = []
        if pending and ipca.n_samples_seen_ == 0:
            ipca.partial_fit(np.vstack(pending))
        scores = np.zeros((*ds.shape[:-1], n_components))
        for block in blocks:
            scores[block] = ipca.transform(rows(block)).reshape(
                *[s.stop - s.start for s in block], n_components
            )
    return Decomposition(ipca.components_, scores, ipca.explained_variance_ratio_, "pca")


def nmf(
    data: np.ndarray, n_components: int = 4, *, binning: int = 1, max_iter: int = 400, seed: int = 0
) -> Decomposition:
    """NMF (KL divergence suits counts) of a (H, W, C) map, optionally binned first."""
    from sklearn.decomposition import NMF

    binned = bin_map(np.asarray(data, dtype=np.float64), binning)
    h, w, c = binned.shape
    model = NMF(
        n_components=n_components,
        init="nndsvda",
        beta_loss="kullback-leibler",
        solver="mu",
        max_iter=max_iter,
        random_state=seed,
    )
    scores = model.fit_transform(np.clip(binned.reshape(-1, c), 0, None))
    return Decomposition(model.components_, scores.reshape(h, w, n_components), None, "nmf")


def nmf_file(
    path: str, dataset: str, n_components: int = 4, *, binning: int = 4, max_iter: int = 400
) -> Decomposition:
    """NMF of an HDF5 map binned on the fly block by block (2-D maps only)."""
    with open_dataset(path, dataset) as ds:
        if ds.ndim != 3:
            raise ValueError(f"{path}::{dataset}: NMF needs a (rows, columns, channels) map")
        h, w, c = ds.shape
        b = max(binning, 1)
        out = np.zeros((h // b, w // b, c))
        for block in plan_blocks(ds.shape, ds.chunks, ds.dtype.itemsize):
            data = np.asarray(ds[block], dtype=np.float64)
            rows = (block[0].start + np.arange(data.shape[0])) // b
            cols = (block[1].start + np.arange(data.shape[1])) // b
            keep_r = rows < out.shape[0]
            keep_c = cols < out.shape[1]
            sub = data[keep_r][:, keep_c]
            np.add.at(out, (rows[keep_r][:, None], cols[keep_c][None, :]), sub)
    return nmf(out, n_components, binning=1, max_iter=max_iter)
