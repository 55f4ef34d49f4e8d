"""Physics wrappers against published values (NIST, standard tables), not against our code."""

from __future__ import annotations

import itertools

import pytest

from beamdesk.xrf import physics


def test_fe_k_group_energies_and_kb_ka_ratio() -> None:
    lines = physics.group_lines("Fe", "K")
    main = max(lines, key=lambda x: x.rate)
    assert main.energy == pytest.approx(6.40, abs=0.01)  # Fe Kα1 (Bearden 6.404 keV)
    kb = sum(x.rate for x in lines if x.energy > 7.0)
    ka = sum(x.rate for x in lines if x.energy < 6.5)
    assert 0.11 < kb / ka < 0.15  # published Kβ/Kα ≈ 0.13
    assert sum(x.rate for x in lines) == pytest.approx(1.0)


def test_ka_kb_split_partitions_k() -> None:
    k = physics.group_lines("Cu", "K")
    ka = physics.group_lines("Cu", "Ka")
    kb = physics.group_lines("Cu", "Kb")
    assert max(x.energy for x in ka) < min(x.energy for x in kb)
    assert len(ka) + len(kb) == len(k)


def test_lines_closer_than_10_ev_are_merged() -> None:
    # Cu Kα1/Kα2 are 20 eV apart (kept), Kβ1/Kβ3 about 1 eV apart (merged)
    e = sorted(x.energy for x in physics.group_lines("Cu", "K"))
    assert all(b - a >= physics.MERGE_TOLERANCE_KEV for a, b in itertools.pairwise(e))


def test_l_subshell_vacancies_follow_coster_kronig() -> None:
    # Pb at 20 keV: all L subshells ionised; CK transfers raise L3 above its primary share
    v = physics.shell_vacancies("Pb", 20.0)
    assert v["L3"] > v["L2"] > 0 and v["L1"] > 0
    # below the L1 edge (15.86 keV) L1 lines are absent
    assert physics.group_lines("Pb", "L1", 15.0) == ()
    assert physics.group_lines("Pb", "L3", 15.0)


def test_edges_and_yields() -> None:
    assert physics.edge_energy("Fe", "K") == pytest.approx(7.112, abs=0.005)
    assert physics.fluorescence_yield("Fe", "K") == pytest.approx(0.35, abs=0.02)


def test_mass_attenuation_water_matches_nist() -> None:
    # NIST XCOM / Hubbell–Seltzer: water μ/ρ = 5.329 cm²/g at 10 keV, 0.2059 at 100 keV
    water = physics.parse_compound("H2O")
    assert physics.mass_attenuation(water, 10.0)[0] == pytest.approx(5.329, rel=0.02)
    assert physics.mass_attenuation(water, 100.0)[0] == pytest.approx(0.1707, rel=0.03)


def test_escape_peaks_si_and_ge() -> None:
    si = physics.escape_lines("Si", 6.4)
    assert si[0][0] == pytest.approx(1.74, abs=0.01)
    p_si = sum(p for _, p in si)
    assert 0.002 < p_si < 0.03  # Si escape of Fe Kα: about 1 %
    ge = physics.escape_lines("Ge", 15.0)
    assert sum(p for _, p in ge) > 0.05  # Ge escape is much stronger (ω_K ≈ 0.5)
    assert physics.escape_lines("Si", 1.5) == []  # below the Si K edge


def test_unknown_names_raise() -> None:
    with pytest.raises(physics.PhysicsError):
        physics.group_lines("Xx", "K")
    with pytest.raises(physics.PhysicsError):
        physics.group_lines("Fe", "Q")
    with pytest.raises(physics.PhysicsError):
        physics.parse_compound("not-a-material")


def test_compton_energy() -> None:
    # E' = E / (1 + E/mc² (1 − cos θ)); 17.5 keV at 90°: 16.93 keV
    assert physics.compton_energy(17.5, 90.0) == pytest.approx(17.5 / (1 + 17.5 / 511.0), rel=1e-3)
