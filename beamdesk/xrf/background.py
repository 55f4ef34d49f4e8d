"""Continuum estimation: SNIP, iterative strip and polynomial — all vectorised over spectra.

Each function accepts a 1-D spectrum or a 2-D array (spectra × channels) and works along the
last axis, so a whole chunk of a map is processed with a handful of numpy operations.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import savgol_filter


def smooth(y: np.ndarray, width: int) -> np.ndarray:
    """Savitzky–Golay (odd window ≥ 3, quadratic) followed by a [¼ ½ ¼] pass, like PyMca.

    Smoothing first stops the clipping algorithms from following downward noise spikes.
    """
    y = np.asarray(y, dtype=np.float64)
    out = y.copy()
    if width >= 3 and y.shape[-1] > width:
        window = width if width % 2 else width + 1
        out = savgol_filter(out, window, 2, axis=-1, mode="nearest")
    if out.shape[-1] > 2:
        mid = 0.25 * out[..., :-2] + 0.5 * out[..., 1:-1] + 0.25 * out[..., 2:]
        first = 0.5 * (out[..., :1] + mid[..., :1])
        last = 0.5 * (out[..., -1:] + mid[..., -1:])
        out = np.concatenate([first, mid, last], axis=-1)
    return out


def strip(
    y: np.ndarray,
    width: int = 1,
    iterations: int = 20000,
    constant: float = 1.0,
    filter_width: int = 1,
    anchors: list[int] | None = None,
) -> np.ndarray:
    """Iterative strip: each pass replaces y[i] by the mean of y[i±w] when that is lower.

    All channels are updated from the previous pass (Jacobi order) so the result does not
    depend on the scan direction; the loop stops early once nothing changes any more.
    Anchors (channel indices) are never modified.
    """
    b = smooth(y, filter_width)
    w = max(int(width), 1)
    n = b.shape[-1]
    if n <= 2 * w:
        return b
    keep = np.zeros(n, dtype=bool)
    for a in anchors or []:
        if 0 <= a < n:
            keep[a] = True
    inner = slice(w, n - w)
    for _ in range(int(iterations)):
        mean = 0.5 * (b[..., : n - 2 * w] + b[..., 2 * w :])
        cur = b[..., inner]
        lower = cur > mean * constant
        lower &= ~keep[inner]
        if not lower.any():
            break
        cur[lower] = mean[lower]  # cur is a view: this updates b
    return b


def snip(y: np.ndarray, width: int = 30, filter_width: int = 0) -> np.ndarray:
    """SNIP with a decreasing clipping window (Ryan et al. 1988; Morháč 2009).

    Works on many spectra at once: for an (N, C) array every window size is one vectorised
    minimum. No log-log transform, like PyMca, so the result is linear in the counts scale.
    """
    b = smooth(y, filter_width) if filter_width else np.array(y, dtype=np.float64, copy=True)
    n = b.shape[-1]
    for p in range(min(int(width), (n - 1) // 2), 0, -1):
        mean = 0.5 * (b[..., : n - 2 * p] + b[..., 2 * p :])
        np.minimum(b[..., p : n - p], mean, out=b[..., p : n - p])
    return b


def polynomial(
    y: np.ndarray, order: int = 2, iterations: int = 20, weights: np.ndarray | None = None
) -> np.ndarray:
    """Polynomial under the spectrum: fit, clip points above the fit, refit (lower envelope)."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    x = np.linspace(-1.0, 1.0, y.shape[-1])
    v = np.vander(x, order + 1)
    cur = y.copy()
    for _ in range(iterations):
        coef, *_ = np.linalg.lstsq(
            v if weights is None else v * weights[:, None],
            (cur if weights is None else cur * weights).T,
            rcond=None,
        )
        fit = (v @ coef).T
        cur = np.minimum(cur, fit)
    out = (v @ coef).T
    return out[0] if out.shape[0] == 1 and np.ndim(y) == 2 and y.shape[0] == 1 else out


def estimate(
    y: np.ndarray,
    method: str,
    *,
    snip_width: int = 30,
    strip_width: int = 1,
    strip_iterations: int = 20000,
    strip_constant: float = 1.0,
    filter_width: int = 1,
    poly_order: int = 2,
) -> np.ndarray:
    """Dispatch on a method name: 'snip', 'strip', 'polynomial' or 'none'."""
    if method == "snip":
        return snip(y, snip_width, filter_width)
    if method == "strip":
        return strip(y, strip_width, strip_iterations, strip_constant, filter_width)
    if method == "polynomial":
        out = polynomial(y, poly_order)
        return out.reshape(np.shape(y))
    if method == "none":
        return np.zeros(np.shape(y))
    raise ValueError(f"unknown background method {method!r} (snip, strip, polynomial, none)")
