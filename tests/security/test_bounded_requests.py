"""One request must not exhaust the server: files that declare or decompress to far more
than the read limit, asked for as PNG, decimated, summed or mapped, and a 32-dimensional
dataset. Each runs while another thread asks ``/api/health`` (answers within a second),
with the server's peak memory measured from ``/proc`` (the server runs in this process;
its reader workers are separate, limited processes).

The files are a few megabytes: zero-filled chunks compressed once and written directly
(``write_direct_chunk``), or chunks never written, which libhdf5 fills on reading.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest

from beamdesk.xrf.config import XRFConfig, to_toml_dict
from tests.security.conftest import Facility, problem
from tests.security.expectations import VARIANTS

RELEASED = VARIANTS[4].number
FOLDER = "raw/bombs"
MiB = 1 << 20
# What the server may grow by while refusing or serving one of these requests: well under
# the 256 MiB read limit, and far under what the files declare (2 to 64 GiB).
REFUSAL_GROWTH = 96 * MiB
SERVING_GROWTH = 200 * MiB


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def measured(
    facility: Facility, request: Callable[[], httpx.Response]
) -> tuple[httpx.Response, int, list[float]]:
    """Answer, the server's peak memory growth in bytes, and /api/health's answer times."""
    times: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            assert facility.client.get("/api/health").status_code == 200
            times.append(time.perf_counter() - t0)
            time.sleep(0.05)

    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    before = _status_kib("VmRSS")
    thread = threading.Thread(target=poll)
    thread.start()
    try:
        time.sleep(0.1)
        answer = request()
        time.sleep(0.1)
    finally:
        done.set()
        thread.join()
    growth = (_status_kib("VmHWM") - before) * 1024
    return answer, growth, times


def zero_chunks(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str) -> None:
    """A gzip dataset of zeros whose every chunk is written, compressed once."""
    packed = zlib.compress(np.zeros(chunks, dtype=dtype).tobytes(), 6)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("data", shape=shape, chunks=chunks, dtype=dtype, compression="gzip")
        grid = [range(0, n, c) for n, c in zip(shape, chunks, strict=True)]
        for offset in np.stack(np.meshgrid(*grid, indexing="ij"), -1).reshape(-1, len(shape)):
            ds.id.write_direct_chunk(tuple(int(o) for o in offset), packed)


@pytest.fixture(scope="module")
def bombs(facility: Facility) -> dict[str, str]:
    folder = facility.settings.data_root / RELEASED / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    # 16384² uint8 = 256 MiB decoded (the read limit), 256 kB on disk.
    zero_chunks(folder / "image.h5", (16384, 16384), (1024, 1024), "u1")
    # 512 × 512 pixels × 2048 channels float32 = 2 GiB decoded, ~2 MB on disk.
    zero_chunks(folder / "map.h5", (512, 512, 2048), (16, 16, 2048), "f4")
    # 1000 × 1000 pixels × 256 channels float32 = 1 GiB decoded: the most a sum may read.
    zero_chunks(folder / "wide.h5", (1000, 1000, 256), (50, 50, 256), "f4")
    with h5py.File(folder / "huge.h5", "w") as f:
        # 64 GiB declared, no chunk written: libhdf5 fills every read with zeros.
        f.create_dataset("data", shape=(262144, 262144), chunks=(1024, 1024), dtype="u1")
        f.create_dataset("dims32", data=np.zeros((1,) * 32, dtype="f8"))
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert sizes["map.h5"] < 4 * MiB and sizes["image.h5"] < MiB, sizes
    return {name: f"{FOLDER}/{name}.h5" for name in ("image", "map", "wide", "huge")}


def h5_data(facility: Facility, file: str, **params: str) -> Callable[[], httpx.Response]:
    url = f"/api/proposals/{RELEASED}/h5/data"
    return lambda: facility.client.get(url, params={"file": file, "path": "/data", **params})


def xrf(facility: Facility, route: str, body: dict) -> Callable[[], httpx.Response]:  # type: ignore[type-arg]
    csrf = facility.use("anonymous")
    url = f"/api/proposals/{RELEASED}/xrf/{route}"
    return lambda: facility.client.post(url, json=body, headers={"X-CSRF-Token": csrf})


def check(answer: httpx.Response, growth: int, times: list[float], limit: int) -> None:
    print(f"{answer.status_code}: server +{growth / MiB:.0f} MiB, health ≤ {max(times):.3f} s")
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert growth < limit, f"server grew by {growth / MiB:.0f} MiB"
    assert times and max(times) < 1.0, times


@pytest.mark.parametrize(
    ("name", "params", "refused"),
    [
        ("whole image as PNG", {"format": "png"}, True),
        ("16 Mpx of it as PNG", {"format": "png", "selection": "0:4096,0:4096"}, False),
        ("whole image as JSON", {}, True),
        ("whole image as CSV", {"format": "csv"}, True),
        (
            "decimated to 20000² as JSON",
            {"downsample": "20000x20000", "downsample_method": "decimate"},
            True,
        ),
        (
            "whole image decimated",
            {"downsample": "512x512", "downsample_method": "decimate"},
            False,
        ),
    ],
)
def test_a_large_image_costs_bounded_memory(
    facility: Facility, bombs: dict[str, str], name: str, params: dict[str, str], refused: bool
) -> None:
    answer, growth, times = measured(facility, h5_data(facility, bombs["image"], **params))
    check(answer, growth, times, REFUSAL_GROWTH if refused else SERVING_GROWTH)
    if refused:
        assert answer.status_code in (413, 422) and problem(answer)["detail"]
    else:
        assert answer.status_code == 200, answer.text[:300]
        if params.get("format") == "png":
            assert answer.content[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            assert np.asarray(answer.json()).shape == (512, 512)
            assert not np.asarray(answer.json()).any()  # zeros, as written


@pytest.mark.parametrize(
    "params",
    [
        {"downsample": "1024x1024", "downsample_method": "decimate"},
        {"downsample": "1024x1024", "downsample_method": "mean"},
        {"format": "png"},
        {"selection": "0:16384,0:16384", "format": "png"},
        {},
    ],
)
def test_64_gib_declared_is_refused_or_bounded(
    facility: Facility, bombs: dict[str, str], params: dict[str, str]
) -> None:
    answer, growth, times = measured(facility, h5_data(facility, bombs["huge"], **params))
    check(answer, growth, times, SERVING_GROWTH)
    if answer.status_code != 200:
        assert answer.status_code in (413, 422) and problem(answer)["detail"]


@pytest.mark.parametrize(
    ("route", "extra"),
    [
        ("spectrum", {}),  # the whole map's sum
        ("fit", {}),
        ("spectrum", {"rows": [0, 512], "cols": [0, 512]}),
        ("roi", {}),
    ],
)
def test_a_decompression_bomb_in_the_xrf_routes(
    facility: Facility,
    bombs: dict[str, str],
    route: str,
    extra: dict,  # type: ignore[type-arg]
) -> None:
    body: dict = {"file": bombs["map"], "path": "/data", **extra}  # type: ignore[type-arg]
    if route == "fit":
        config = to_toml_dict(XRFConfig(peaks={"Fe": ["K"]}))
        body = {"source": body, "config": config}
    if route == "roi":
        body |= {
            "windows": [{"name": "Fe", "emin": 6.2, "emax": 6.6}],
            "calibration": {"zero": 0.0, "gain": 0.01},
        }
    answer, growth, times = measured(facility, xrf(facility, route, body))
    check(answer, growth, times, REFUSAL_GROWTH)
    assert answer.status_code in (413, 422), answer.text[:300]
    assert "MiB" in problem(answer)["detail"] or "GiB" in problem(answer)["detail"]


@pytest.mark.parametrize(
    ("route", "params"),
    [
        ("meta", {}),
        ("stats", {}),
        ("data", {}),
        ("data", {"format": "png"}),
        ("data", {"downsample": "8x8"}),
        ("data", {"format": "npy"}),
        ("data", {"format": "tiff"}),
        ("data", {"selection": "0"}),
    ],
)
def test_a_32_dimensional_dataset_is_never_a_500(
    facility: Facility, bombs: dict[str, str], route: str, params: dict[str, str]
) -> None:
    url = f"/api/proposals/{RELEASED}/h5/{route}"
    answer = facility.client.get(url, params={"file": bombs["huge"], "path": "/dims32", **params})
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    if answer.status_code == 200 and route == "meta":
        assert answer.json()["shape"] == [1] * 32
    elif answer.status_code != 200:
        assert problem(answer)["detail"]


@pytest.mark.parametrize("windows", [8, 9])
def test_the_largest_roi_answer_is_bounded(
    facility: Facility, bombs: dict[str, str], windows: int
) -> None:
    """A million pixels × 8 windows is answered (8 M values, encoded from numpy); one
    window more is refused before any reading."""
    body = {
        "file": bombs["wide"],
        "path": "/data",
        "windows": [{"name": f"w{k}", "emin": k + 1.0, "emax": k + 1.5} for k in range(windows)],
        "calibration": {"zero": 0.0, "gain": 0.05},
    }
    answer, growth, times = measured(facility, xrf(facility, "roi", body))
    check(answer, growth, times, SERVING_GROWTH)
    if windows == 8:
        assert answer.status_code == 200, answer.text[:300]
        maps = answer.json()["maps"]
        assert answer.json()["shape"] == [1000, 1000] and len(maps) == 8
        assert all(len(m) == 1_000_000 and not any(m) for m in maps.values())
    else:
        assert answer.status_code in (413, 422) and problem(answer)["detail"]
