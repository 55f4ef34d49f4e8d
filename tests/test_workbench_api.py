"""The XRF workbench API (routes/xrf_api.py) through HTTP, on a synthetic map of known areas.

Areas are checked against the amplitudes the independent forward model
(tests/xrf/xrf_synth.py) put into the map, never against the engine's own output.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from beamdesk.settings import Settings
from tests.workbench_world import (
    CONFIG_FILE,
    MAP_FILE,
    MAP_PATH,
    NUMBER,
    OTHER,
    WorkbenchWorld,
    build,
)


@pytest.fixture
def wb(settings: Settings, sessions: sessionmaker[Session]) -> WorkbenchWorld:
    return build(settings, sessions)


def fit(
    client: Any, wb: WorkbenchWorld, who: str = "pi", number: str = NUMBER, **source: Any
) -> Any:
    body = {"source": {"file": MAP_FILE, "path": MAP_PATH, **source}, "config_file": CONFIG_FILE}
    return client.post(f"/api/proposals/{number}/xrf/fit", json=body, headers=wb.token(who))


def test_sum_spectrum_fit_recovers_the_generating_areas(client: Any, wb: WorkbenchWorld) -> None:
    r = fit(client, wb)
    assert r.status_code == 200, r.text
    out = r.json()
    for el in ("Fe", "Cu", "Zn"):
        group = out["groups"][f"{el} K"]
        true_area = float(wb.truth[el].sum())
        # Poisson σ of a summed area of 10⁵–10⁶ counts is ~0.1 %; the model's continuum and
        # tails are not the generator's, so allow 2 % (and stay within a few σ of the fit).
        assert group["area"] == pytest.approx(true_area, rel=0.02), (el, group, true_area)
        assert 0 < group["sigma"] < 0.01 * true_area
    assert out["chi2_reduced"] < 3
    n = len(out["energy"])
    assert (
        n
        == len(out["data"])
        == len(out["fit"])
        == len(out["background"])
        == len(out["residuals"])
        == len(out["contributions"]["Fe K"])
    )
    # the Fe contribution peaks at Fe Kα (6.40 keV, xraylib), within one 20 eV channel
    fe = np.array(out["contributions"]["Fe K"])
    assert out["energy"][int(fe.argmax())] == pytest.approx(6.40, abs=0.03)
    assert len(out["spectrum"]["counts"]) == 1024


def test_pixel_and_region(client: Any, wb: WorkbenchWorld) -> None:
    r = fit(client, wb, pixel=[3, 15])
    assert r.status_code == 200, r.text
    fe = r.json()["groups"]["Fe K"]
    true_fe = float(wb.truth["Fe"][3, 15])  # 2100 counts
    assert abs(fe["area"] - true_fe) < 4 * fe["sigma"] + 0.03 * true_fe
    r = fit(client, wb, rows=[0, 4], cols=[0, 8])
    assert r.status_code == 200, r.text
    fe = r.json()["groups"]["Fe K"]
    assert fe["area"] == pytest.approx(float(wb.truth["Fe"][0:4, 0:8].sum()), rel=0.03)


def test_one_dimensional_and_inline_config(client: Any, wb: WorkbenchWorld) -> None:
    cfg = client.get(
        f"/api/proposals/{NUMBER}/xrf/config", params={"file": CONFIG_FILE}, headers=wb.token("pi")
    ).json()["config"]
    body = {"source": {"file": MAP_FILE, "path": MAP_PATH, "pixel": [0, 0]}, "config": cfg}
    r = client.post(f"/api/proposals/{NUMBER}/xrf/fit", json=body, headers=wb.token("pi"))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "source, status",
    [
        ({"file": MAP_FILE, "path": MAP_PATH, "pixel": [99, 0]}, 422),
        ({"file": MAP_FILE, "path": MAP_PATH, "pixel": [1]}, 422),
        ({"file": MAP_FILE, "path": MAP_PATH, "rows": [5, 2]}, 422),
        ({"file": MAP_FILE, "path": "/entry/nothing"}, 422),
        ({"file": MAP_FILE, "path": MAP_PATH, "pixel": [0, 0], "rows": [0, 1]}, 422),
        ({"file": "raw/line.h5", "path": "/entry/data/spectra", "pixel": [0]}, 422),
        ({"file": CONFIG_FILE}, 422),  # a text file that is no spectrum
        ({"file": "../20260002/secret.cfg"}, 404),  # outside the proposal
        ({"file": "/etc/passwd"}, 404),
        ({"file": "raw/missing.nxs", "path": MAP_PATH}, 404),
    ],
)
def test_bad_input(client: Any, wb: WorkbenchWorld, source: dict[str, Any], status: int) -> None:
    body = {"source": source, "config_file": CONFIG_FILE}
    r = client.post(f"/api/proposals/{NUMBER}/xrf/fit", json=body, headers=wb.token("pi"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json") or r.headers[
        "content-type"
    ].startswith("application/json")
    assert "Traceback" not in r.text


def test_bad_config(client: Any, wb: WorkbenchWorld) -> None:
    src = {"file": MAP_FILE, "path": MAP_PATH}
    for body in (
        {"source": src},
        {"source": src, "config": {"detector": {"zero": "x"}}},
        {"source": src, "config": {"peaks": {}}, "config_file": CONFIG_FILE},
        {"source": src, "config_file": "../20260002/secret.cfg"},
    ):
        r = client.post(f"/api/proposals/{NUMBER}/xrf/fit", json=body, headers=wb.token("pi"))
        assert r.status_code in (404, 422), (body, r.text)


def test_access(client: Any, wb: WorkbenchWorld) -> None:
    assert fit(client, wb, "outsider").status_code == 404
    assert fit(client, wb, "participant", pixel=[0, 0]).status_code == 200
    # anonymous: no CSRF token, no session → refused before anything is read
    assert client.post(f"/api/proposals/{NUMBER}/xrf/fit", json={}).status_code in (403, 404)
    page = f"/proposals/{NUMBER}/workbench"
    assert client.get(page, follow_redirects=False).status_code == 303  # sign in first
    assert client.get(page, headers=wb.token("outsider")).status_code == 404
    assert client.get(page, headers=wb.token("participant")).status_code == 200
    assert (
        client.get(f"{page}?file=../{OTHER}/secret.cfg", headers=wb.token("pi")).status_code == 404
    )
    assert client.get("/api/xrf/identify", params={"energy": 6.4}).status_code == 401


def test_identify(client: Any, wb: WorkbenchWorld) -> None:
    r = client.get(
        "/api/xrf/identify", params={"energy": 6.40, "tolerance": 0.02}, headers=wb.token("pi")
    )
    assert r.status_code == 200
    first = r.json()["lines"][0]
    assert (first["element"], first["group"]) == ("Fe", "K")
    assert first["energy"] == pytest.approx(6.404, abs=0.002)  # Fe Kα1 (tabulated)
    assert (
        client.get("/api/xrf/identify", params={"energy": -1}, headers=wb.token("pi")).status_code
        == 422
    )


def test_config_save_load_convert_and_confinement(client: Any, wb: WorkbenchWorld) -> None:
    url = f"/api/proposals/{NUMBER}/xrf/config"
    loaded = client.get(url, params={"file": CONFIG_FILE, "to": "toml"}, headers=wb.token("pi"))
    assert loaded.status_code == 200
    cfg = loaded.json()["config"]
    assert "[detector]" in loaded.json()["text"]
    save = f"{url}/save"
    r = client.post(save, json={"name": "shell.toml", "config": cfg}, headers=wb.token("pi"))
    assert r.status_code == 201, r.text
    assert (wb.folder / "config" / "shell.toml").is_file()
    r = client.post(save, json={"name": "shell.cfg", "config": cfg}, headers=wb.token("pi"))
    assert r.status_code == 201
    text = (wb.folder / "config" / "shell.cfg").read_text()
    assert "[detector]" in text and "Fe = K" in text.replace("Fe = K\n", "Fe = K\n")
    # the saved .cfg reads back as the same configuration
    back = client.get(url, params={"file": "config/shell.cfg"}, headers=wb.token("pi")).json()
    assert back["config"]["peaks"] == cfg["peaks"]
    assert back["config"]["detector"]["gain"] == pytest.approx(cfg["detector"]["gain"])
    # no overwrite without asking; never outside config/, never raw/
    assert (
        client.post(
            save, json={"name": "shell.toml", "config": cfg}, headers=wb.token("pi")
        ).status_code
        == 409
    )
    assert (
        client.post(
            save,
            json={"name": "shell.toml", "config": cfg, "overwrite": True},
            headers=wb.token("pi"),
        ).status_code
        == 201
    )
    raw_before = sorted(p.name for p in (wb.folder / "raw").rglob("*"))
    for name in (
        "../raw/xrf/map.nxs",
        "../raw/x.toml",
        "/tmp/x.toml",
        "sub/x.toml",
        "x.py",
        ".hidden.toml",
        "..",
        "x\x00.toml",
    ):
        r = client.post(
            save, json={"name": name, "config": cfg, "overwrite": True}, headers=wb.token("pi")
        )
        assert r.status_code == 422, (name, r.text)
    assert sorted(p.name for p in (wb.folder / "raw").rglob("*")) == raw_before
    # a reviewer or outsider may not write
    assert (
        client.post(
            save, json={"name": "y.toml", "config": cfg}, headers=wb.token("outsider")
        ).status_code
        == 404
    )
    assert (
        client.post(
            save,
            json={"name": "y.toml", "config": {"detector": {"gain": "?"}}},
            headers=wb.token("pi"),
        ).status_code
        == 422
    )
    listing = client.get(f"/api/proposals/{NUMBER}/xrf/configs", headers=wb.token("pi")).json()
    assert set(listing["files"]) >= {"config/fit.cfg", "config/shell.toml", "config/shell.cfg"}
    assert (
        client.get(
            url, params={"file": "../20260002/secret.cfg"}, headers=wb.token("pi")
        ).status_code
        == 404
    )
    assert (
        client.get(f"/api/proposals/{OTHER}/xrf/configs", headers=wb.token("outsider")).status_code
        == 404
    )


def test_roi_map(client: Any, wb: WorkbenchWorld) -> None:
    from tests.xrf.xrf_synth import GAIN, ZERO

    body = {
        "file": MAP_FILE,
        "path": MAP_PATH,
        "calibration": {"zero": ZERO, "gain": GAIN},
        "windows": [{"name": "Fe", "emin": 6.2, "emax": 6.6}],
    }
    r = client.post(f"/api/proposals/{NUMBER}/xrf/roi", json=body, headers=wb.token("pi"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["shape"] == [12, 16]
    fe = np.array(out["maps"]["Fe"]).reshape(12, 16)
    with h5py.File(wb.folder / MAP_FILE) as f:
        counts = f[MAP_PATH][()]
    e = ZERO + GAIN * np.arange(counts.shape[-1])
    inside = (e >= 6.2) & (e <= 6.6)
    np.testing.assert_allclose(fe, counts[..., inside].sum(axis=-1))
    bad = {**body, "windows": [{"name": "x", "emin": 30, "emax": 40}]}
    assert (
        client.post(
            f"/api/proposals/{NUMBER}/xrf/roi", json=bad, headers=wb.token("pi")
        ).status_code
        == 422
    )
    for file, path in (
        ("raw/line.h5", "/entry/data/spectra"),
        (MAP_FILE, "/nothing"),
        (CONFIG_FILE, MAP_PATH),
    ):
        bad = {**body, "file": file, "path": path}
        r = client.post(f"/api/proposals/{NUMBER}/xrf/roi", json=bad, headers=wb.token("pi"))
        assert r.status_code == 422, (file, path, r.status_code, r.text)
    bad = {**body, "windows": [{"name": "x", "emin": 7, "emax": 6}]}
    assert (
        client.post(
            f"/api/proposals/{NUMBER}/xrf/roi", json=bad, headers=wb.token("pi")
        ).status_code
        == 422
    )


def test_rgb_from_a_result_file(client: Any, wb: WorkbenchWorld) -> None:
    # a result laid out as the map fit writes it (docs/xrf.md), with known maps
    (wb.folder / "processed").mkdir()
    res = wb.folder / "processed" / "1-map_xrf.nxs"
    with h5py.File(res, "w") as f:
        for el, values in wb.truth.items():
            f[f"entry/xrf_fit/results/parameters/{el}_K"] = values
    info = client.get(
        f"/api/proposals/{NUMBER}/xrf/result",
        params={"file": "processed/1-map_xrf.nxs"},
        headers=wb.token("pi"),
    )
    assert info.status_code == 200
    assert sorted(info.json()["groups"]) == ["Cu K", "Fe K", "Zn K"]
    body = {
        "file": "processed/1-map_xrf.nxs",
        "red": {"group": "Fe K", "scaling": "minmax"},
        "green": {"group": "Cu K", "scaling": "minmax", "transform": "sqrt"},
    }
    r = client.post(f"/api/proposals/{NUMBER}/xrf/rgb", json=body, headers=wb.token("pi"))
    assert r.status_code == 200, r.text
    out = r.json()
    red = np.array(out["channels"]["red"]["scaled"]).reshape(12, 16)
    fe = wb.truth["Fe"]
    np.testing.assert_allclose(red, (fe - fe.min()) / (fe.max() - fe.min()))
    assert "blue" not in out["channels"]
    sc = out["scatter"]
    assert (sc["x_group"], sc["y_group"]) == ("Fe K", "Cu K")
    assert sc["x"][3 * 16 + 5] == fe[3, 5]
    expected_r = np.corrcoef(fe.ravel(), wb.truth["Cu"].ravel())[0, 1]
    assert sc["pearson_r"] == pytest.approx(expected_r)
    bad = {**body, "red": {"group": "Pb L"}}
    assert (
        client.post(
            f"/api/proposals/{NUMBER}/xrf/rgb", json=bad, headers=wb.token("pi")
        ).status_code
        == 422
    )
    bad = {**body, "red": {"group": "Fe K", "scaling": "weird"}}
    assert (
        client.post(
            f"/api/proposals/{NUMBER}/xrf/rgb", json=bad, headers=wb.token("pi")
        ).status_code
        == 422
    )
    assert (
        client.post(
            f"/api/proposals/{NUMBER}/xrf/rgb", json=body, headers=wb.token("outsider")
        ).status_code
        == 404
    )


def test_session_post_needs_csrf(client: Any, wb: WorkbenchWorld) -> None:
    from tests.factories import PASSWORD

    client.post("/login", data={"username": "pi", "password": PASSWORD}, follow_redirects=False)
    body = {
        "source": {"file": MAP_FILE, "path": MAP_PATH, "pixel": [0, 0]},
        "config_file": CONFIG_FILE,
    }
    assert client.post(f"/api/proposals/{NUMBER}/xrf/fit", json=body).status_code == 403


def test_spectrum_spectra_and_elements(client: Any, wb: WorkbenchWorld) -> None:
    src = {"file": MAP_FILE, "path": MAP_PATH, "pixel": [2, 3]}
    r = client.post(f"/api/proposals/{NUMBER}/xrf/spectrum", json=src, headers=wb.token("pi"))
    assert r.status_code == 200, r.text
    with h5py.File(wb.folder / MAP_FILE) as f:
        np.testing.assert_array_equal(r.json()["counts"], f[MAP_PATH][2, 3])
    assert r.json()["map_shape"] == [12, 16]
    found = client.get(
        f"/api/proposals/{NUMBER}/xrf/spectra", params={"file": MAP_FILE}, headers=wb.token("pi")
    ).json()["datasets"]
    assert found[0] == {"path": MAP_PATH, "shape": [12, 16, 1024], "spectrum": False}
    assert (
        client.get(
            f"/api/proposals/{NUMBER}/xrf/spectra",
            params={"file": CONFIG_FILE},
            headers=wb.token("pi"),
        ).status_code
        == 422
    )
    table = client.get(
        "/api/xrf/elements", params={"excitation": 17.0}, headers=wb.token("pi")
    ).json()["elements"]
    by = {e["symbol"]: e["groups"] for e in table}
    assert by["Fe"]["K"]["energy"] == pytest.approx(6.404, abs=0.002)  # Fe Kα1
    assert by["Fe"]["K"]["excited"]  # edge 7.11 < 17 keV
    assert not by["Ag"]["K"]["excited"]  # edge 25.5 > 17 keV
    assert by["Pb"]["L"]["energy"] == pytest.approx(10.55, abs=0.01)  # Pb Lα1


def test_single_mca_file(client: Any, wb: WorkbenchWorld) -> None:
    """A plain one-column .mca (no HDF5 path) is fitted as it is."""
    with h5py.File(wb.folder / MAP_FILE) as f:
        counts = f[MAP_PATH][0:6, 0:8].sum(axis=(0, 1))
    (wb.folder / "raw" / "corner.mca").write_text("\n".join(str(int(c)) for c in counts) + "\n")
    body = {"source": {"file": "raw/corner.mca"}, "config_file": CONFIG_FILE}
    r = client.post(f"/api/proposals/{NUMBER}/xrf/fit", json=body, headers=wb.token("pi"))
    assert r.status_code == 200, r.text
    for el in ("Fe", "Zn"):
        assert r.json()["groups"][f"{el} K"]["area"] == pytest.approx(
            float(wb.truth[el][0:6, 0:8].sum()), rel=0.03
        )
