"""PNG of a spectrum fit: data, fit, background and group contributions (log y), residuals."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from beamdesk.xrf.fit import FitResult


def plot_fit(result: FitResult, path: str | Path, *, title: str = "", max_groups: int = 12) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers
    import matplotlib.pyplot as plt

    e = result.energy
    fig, (ax, axr) = plt.subplots(
        2, 1, sharex=True, figsize=(10, 6.5), dpi=100, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot(e, np.clip(result.data, 0.5, None), ".", ms=2, color="k", label="data")
    ax.plot(e, np.clip(result.fit, 0.5, None), "-", lw=1.2, color="tab:red", label="fit")
    ax.plot(
        e, np.clip(result.background, 0.5, None), "-", lw=1, color="tab:gray", label="background"
    )
    strongest = sorted(result.group_models, key=lambda k: -result.groups[k].area)[:max_groups]
    for name in strongest:
        contrib = result.background + result.group_models[name]
        ax.plot(e, np.clip(contrib, 0.5, None), "-", lw=0.7, label=name)
    ax.set_yscale("log")
    ax.set_ylim(0.5, max(float(result.data.max()) * 2, 10))
    ax.set_ylabel("counts")
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    ax.set_title(f"{title}  χ²ᵣ = {result.chi2_reduced:.2f}")
    # residuals in units of the Poisson σ of the model
    axr.plot(e, result.residuals / np.sqrt(np.maximum(result.fit, 1.0)), "-", lw=0.7, color="k")
    axr.axhline(0, color="tab:red", lw=0.8)
    axr.set_ylabel("(data−fit)/σ")
    axr.set_xlabel("energy (keV)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
