"""RGB correlator: three element maps into one image, and two-element scatter plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCALINGS = ("minmax", "percentile")
TRANSFORMS = ("linear", "log", "sqrt")


def scale_channel(
    values: np.ndarray,
    *,
    scaling: str = "minmax",
    transform: str = "linear",
    percentiles: tuple[float, float] = (1.0, 99.0),
) -> np.ndarray:
    """Map values to [0, 1]: transform first (log/sqrt compress bright spots), then stretch.

    NaNs (unfitted pixels) become 0 so they show as black.
    """
    v = np.asarray(values, dtype=np.float64)
    if transform == "log":
        v = np.log10(np.clip(v, 0, None) + 1.0)
    elif transform == "sqrt":
        v = np.sqrt(np.clip(v, 0, None))
    elif transform != "linear":
        raise ValueError(f"unknown transform {transform!r} (one of {', '.join(TRANSFORMS)})")
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return np.zeros_like(v)
    if scaling == "minmax":
        lo, hi = float(finite.min()), float(finite.max())
    elif scaling == "percentile":
        lo, hi = (float(x) for x in np.percentile(finite, percentiles))
    else:
        raise ValueError(f"unknown scaling {scaling!r} (one of {', '.join(SCALINGS)})")
    out = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    return np.nan_to_num(np.clip(out, 0.0, 1.0), nan=0.0)


def rgb_image(
    red: np.ndarray | None, green: np.ndarray | None, blue: np.ndarray | None, **scaling: object
) -> np.ndarray:
    """(H, W, 3) uint8 image; a missing channel stays black."""
    shape = next(np.shape(c) for c in (red, green, blue) if c is not None)
    planes = [
        scale_channel(c, **scaling) if c is not None else np.zeros(shape)  # type: ignore[arg-type]
        for c in (red, green, blue)
    ]
    return np.round(np.stack(planes, axis=-1) * 255).astype(np.uint8)


def save_png(image: np.ndarray, path: str | Path) -> None:
    from PIL import Image

    Image.fromarray(image).save(path)


def scatter_data(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray | float]:
    """Pixel pairs (finite only) and their Pearson correlation."""
    x = np.asarray(a, dtype=float).ravel()
    y = np.asarray(b, dtype=float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    r = float(np.corrcoef(x, y)[0, 1]) if x.size > 1 and x.std() > 0 and y.std() > 0 else 0.0
    return {"x": x, "y": y, "pearson_r": r}


def scatter_png(
    a: np.ndarray,
    b: np.ndarray,
    path: str | Path,
    *,
    xlabel: str = "A",
    ylabel: str = "B",
    log: bool = False,
) -> None:
    """A 2-D histogram of the pixel pairs (dense maps have too many points to draw singly)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    d = scatter_data(a, b)
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
    x, y = d["x"], d["y"]
    assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
    if x.size:
        h = ax.hist2d(x, y, bins=128, norm=LogNorm(), cmap="viridis")
        fig.colorbar(h[3], ax=ax, label="pixels")
    if log:
        ax.set_xscale("symlog")
        ax.set_yscale("symlog")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"r = {d['pearson_r']:.3f}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
