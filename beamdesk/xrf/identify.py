"""Peak identification: which element lines lie near a given energy.

Candidates are scored by distance and by how strong the line is (fluorescence yield × radiative
rate, plus a small preference for the main Kα/Lα/Mα lines) so the usual suspects come first.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from beamdesk.xrf import physics


@dataclass(frozen=True)
class Candidate:
    element: str
    group: str  # PyMca-style group the line belongs to ("K", "L3", "M5" …)
    line: str  # IUPAC line name, e.g. "KL3"
    energy: float  # keV
    rate: float  # ω × radiative rate of the line within its shell
    distance: float  # keV, signed (line − query)
    score: float


@lru_cache(maxsize=1)
def _all_lines() -> tuple[tuple[str, str, str, float, float], ...]:
    out = []
    for z in range(5, 95):
        el = physics.symbol(z)
        for shell in ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5"):
            omega = physics.fluorescence_yield(el, shell)
            if omega <= 0:
                continue
            for line in physics.raw_lines(el, shell, None):
                # raw_lines without excitation gives 1 vacancy: weight = ω × rate
                out.append((el, shell, line.name, line.energy, line.rate))
    return tuple(out)


def identify(
    energy: float,
    tolerance: float = 0.05,
    *,
    excitation: float | None = None,
    min_rate: float = 1e-3,
    limit: int = 20,
) -> list[Candidate]:
    """Lines within `tolerance` keV of `energy`, best first.

    With an `excitation` energy, lines whose absorption edge is above it are dropped (they
    cannot be excited).
    """
    found = []
    for el, shell, name, e, rate in _all_lines():
        d = e - energy
        if abs(d) > tolerance or rate < min_rate:
            continue
        if excitation and physics.edge_energy(el, shell) > excitation:
            continue
        # Gaussian-like closeness × strength; main shells (K, L3, M5) get no penalty
        closeness = 1.0 - (d / tolerance) ** 2 * 0.5
        score = closeness * rate
        found.append(Candidate(el, shell, name, e, rate, d, score))
    found.sort(key=lambda c: (-c.score, abs(c.distance)))
    return found[:limit]
