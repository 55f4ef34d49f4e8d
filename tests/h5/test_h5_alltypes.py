"""Every dataset kind of ``alltypes.h5`` through the content API: no 5xx, values as h5py
reads them, metadata and data as stock h5grove serves them.

Stock h5grove (its own FastAPI router, on the same file) is the reference for what H5Web
expects; h5py's own read is the reference for values. Where stock h5grove fails (JSON of
big-endian arrays, opaque bytes that are not UTF-8) BeamDesk must still answer, 200 or a
4xx problem that says why, never a 5xx.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from h5grove import fastapi_utils

from tests.h5.alltypes import ALLTYPES, UNRESOLVED, paths_of, write_alltypes
from tests.h5.builders import H5World

FILE = f"raw/{ALLTYPES}"
# /data as H5Web asks for it (flatten for JSON values, dtype=safe for typed arrays, plain
# bin for opaque data), plus the plain JSON and NPY export forms.
FORMS: dict[str, dict[str, str]] = {
    "json": {},
    "flatten": {"flatten": "true"},
    "bin": {"format": "bin"},
    "safe": {"format": "bin", "dtype": "safe"},
    "npy": {"format": "npy"},
}
THROUGH_LINKS = ["/links/soft_group/table_1d", "/links/external_group/inside"]


@pytest.fixture
def world(h5world: H5World) -> H5World:
    write_alltypes(h5world.root / "raw")
    return h5world


@pytest.fixture
def stock(world: H5World, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """Stock h5grove's FastAPI endpoints serving the same folder."""
    monkeypatch.setattr(fastapi_utils.settings, "base_dir", str(world.root / "raw"))
    app = FastAPI()
    app.include_router(fastapi_utils.router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _all_paths(world: H5World) -> list[str]:
    return ["/", *paths_of(world.root / FILE), *THROUGH_LINKS]


def _dataset_paths(world: H5World) -> list[str]:
    with h5py.File(world.root / FILE, "r") as f:
        return [
            p
            for p in _all_paths(world)
            if p not in UNRESOLVED and isinstance(f.get(p), h5py.Dataset)
        ]


def _problem(r: Any) -> str | None:
    """What is wrong with an answer: a 5xx, or a 4xx that is not a clear problem detail."""
    if r.status_code < 400:
        return None
    if r.status_code >= 500:
        return f"{r.status_code}: {r.text[:200]}"
    if r.headers.get("content-type") != "application/problem+json":
        return f"{r.status_code} without problem+json: {r.text[:200]}"
    detail = r.json().get("detail", "")
    # This file is healthy: "damaged" would be a bug of ours dressed up as the file's fault.
    if not detail or "damaged" in detail or "could not be read" in detail:
        return f"{r.status_code} unclear: {detail}"
    return None


def test_every_path_answers_200_or_a_clear_4xx(world: H5World) -> None:
    failures: dict[str, str] = {}
    statuses: dict[int, int] = {}

    def check(what: str, r: Any) -> Any:
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        if problem := _problem(r):
            failures[what] = problem
        return r

    for path in _all_paths(world):
        meta = check(f"meta {path}", world.get("meta", file=FILE, path=path))
        assert meta.status_code == 200, (path, meta.text)  # links that fail are entities too
        kind = meta.json()["kind"]
        if kind in ("soft_link", "external_link"):
            assert path in UNRESOLVED, path
            r = check(f"data {path}", world.get("data", file=FILE, path=path))
            assert r.status_code == 404, (path, r.text)
            continue
        check(f"attr {path}", world.get("attr", file=FILE, path=path))
        if kind == "group":
            check(f"paths {path}", world.get("paths", file=FILE, path=path))
            continue
        for form, params in FORMS.items():
            check(f"data {form} {path}", world.get("data", file=FILE, path=path, **params))
        check(f"stats {path}", world.get("stats", file=FILE, path=path))
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in failures.items())
    assert set(statuses) <= {200, 404, 422}, statuses


def _h5web_request(t: dict[str, Any]) -> dict[str, str]:
    """The /data parameters H5Web 17's H5GroveProvider sends for an h5grove type."""
    if t["class"] == 5:  # opaque: raw bytes
        return {"format": "bin"}
    base = t["base"] if t["class"] == 8 else t  # enum and bool: their base integer type
    if base["class"] == 0 or (base["class"] == 1 and base["size"] in (2, 4, 8, 16)):
        return {"format": "bin", "dtype": "safe"}  # a typed array
    return {"flatten": "true"}


def test_what_h5web_asks_for_every_dataset_is_served(world: H5World) -> None:
    failures = {}
    for path in _dataset_paths(world):
        meta = world.get("meta", file=FILE, path=path).json()
        params = _h5web_request(meta["type"])
        r = world.get("data", file=FILE, path=path, **params)
        if r.status_code != 200:
            failures[path] = f"{params}: {r.status_code} {r.text[:200]}"
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in failures.items())


def _jsonable(value: Any) -> Any:
    """h5py's value in JSON terms, written independently of the server's encoder.

    Walks numpy's own structure (axes, compound members, sub-arrays) so every number keeps
    its type: JSON carries float16/float32 values as the shortest decimal that reads back
    as the same float32 (what h5grove sends), float64 and longdouble as float64, NaN and
    infinities as null, complex numbers as [real, imag].
    """
    if isinstance(value, h5py.Empty):
        return None
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.void) and value.dtype.names:
        return [_jsonable(value[name]) for name in value.dtype.names]
    if isinstance(value, np.complexfloating):
        return [_jsonable(value.real), _jsonable(value.imag)]
    if isinstance(value, np.floating):
        if not np.isfinite(value):
            return None
        return float(str(np.float32(value))) if value.itemsize <= 4 else float(value)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.datetime64):
        return value.item().isoformat()
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    if isinstance(value, (h5py.Reference, h5py.RegionReference)):
        return str(value)
    assert isinstance(value, str), type(value)
    return value


def _safe_dtype(dtype: np.dtype) -> np.dtype:
    """What dtype=safe must give (JavaScript typed arrays): little-endian; f2 → f4, f16 → f8."""
    if dtype.kind == "f":
        return np.dtype("<f4" if dtype.itemsize <= 4 else "<f8")
    return dtype.newbyteorder("<")


def test_values_match_h5py(world: H5World) -> None:
    """JSON, flattened JSON, bin (raw and dtype=safe) and NPY against h5py's own read."""
    checked = {form: 0 for form in FORMS}
    with h5py.File(world.root / FILE, "r") as f:
        for path in _dataset_paths(world):
            dset = f[path]
            value = dset[()]
            is_opaque = dset.id.get_type().get_class() == h5py.h5t.OPAQUE
            answers = {
                form: world.get("data", file=FILE, path=path, **params)
                for form, params in FORMS.items()
            }
            if not is_opaque:  # opaque bytes have no JSON meaning: H5Web reads them as bin
                assert answers["json"].status_code == 200, (path, answers["json"].text)
                assert answers["json"].json() == _jsonable(value), path
                flat = np.ravel(value) if isinstance(value, np.ndarray) else value
                assert answers["flatten"].json() == _jsonable(flat), path
                checked["json"] += 1
                checked["flatten"] += 1
            if isinstance(value, h5py.Empty):
                assert answers["bin"].content == b"" and answers["safe"].content == b""
                continue
            arr = np.asarray(value)  # a scalar variable-length string: its bytes
            if arr.dtype.hasobject:  # variable-length values: JSON only, and said so
                for form in ("bin", "safe", "npy"):
                    assert answers[form].status_code == 422, (path, form)
                    detail = answers[form].json()["detail"]
                    assert "json" in detail or (form == "safe" and "non-numeric" in detail)
                continue
            assert answers["bin"].status_code == 200, (path, answers["bin"].text)
            raw = np.ascontiguousarray(arr).tobytes()
            assert answers["bin"].content == raw, path
            checked["bin"] += 1
            got = np.load(io.BytesIO(answers["npy"].content), allow_pickle=False)
            assert got.dtype == arr.dtype and got.shape == arr.shape, path
            if arr.dtype.kind in "fc":
                np.testing.assert_array_equal(got, arr, err_msg=path)  # NaN == NaN here
            else:
                assert got.tobytes() == raw, path
            checked["npy"] += 1
            if arr.dtype.kind in "iufcb":
                want = arr.astype(_safe_dtype(arr.dtype))
                safe = np.frombuffer(answers["safe"].content, dtype=want.dtype)
                np.testing.assert_array_equal(safe, want.ravel(), err_msg=path)
                checked["safe"] += 1
            elif arr.dtype.kind == "V" and arr.dtype.names:  # compound: no typed array
                assert answers["safe"].status_code == 422, path
    # Every form was compared on many datasets, not skipped.
    assert min(checked.values()) >= 20, checked


def test_stats_match_numpy(world: H5World) -> None:
    with h5py.File(world.root / FILE, "r") as f:
        for path in _dataset_paths(world):
            arr = np.asarray(f[path][()]) if not isinstance(f[path][()], h5py.Empty) else None
            if arr is None or arr.dtype.kind not in "iuf" or arr.size == 0:
                continue
            got = world.get("stats", file=FILE, path=path).json()
            finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
            assert got["min"] == finite.min() and got["max"] == finite.max(), path


def test_meta_matches_stock_h5grove(world: H5World, stock: TestClient) -> None:
    """The same /meta bodies as stock h5grove for every path, links included."""
    differences = {}
    for path in _all_paths(world):
        ours = world.get("meta", file=FILE, path=path)
        theirs = stock.get("/meta", params={"file": ALLTYPES, "path": path})
        assert theirs.status_code == 200, (path, theirs.text)
        if ours.json() != theirs.json():
            differences[path] = (ours.text[:300], theirs.text[:300])
    assert differences == {}, differences


def _same_body(form: str, ours: Any, theirs: Any) -> bool:
    if form in ("json", "flatten"):
        return bool(ours.json() == theirs.json())
    if form == "npy":
        a = np.load(io.BytesIO(ours.content), allow_pickle=False)
        b = np.load(io.BytesIO(theirs.content), allow_pickle=False)
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    return bool(ours.content == theirs.content)


def test_data_matches_stock_h5grove_wherever_it_answers(world: H5World, stock: TestClient) -> None:
    """Whatever stock h5grove serves, BeamDesk serves with the same body.

    Except the bytes of Python object pointers: stock h5grove answers ``format=bin`` for
    variable-length values and for ``h5py.Empty`` with the memory addresses of the objects
    numpy holds. There BeamDesk refuses (422, "ask for format=json") or sends no bytes.
    """
    differences: dict[str, str] = {}
    stock_failures = 0
    with h5py.File(world.root / FILE, "r") as f:
        values = {p: f[p][()] for p in _dataset_paths(world)}
    for path, value in values.items():
        for form, params in FORMS.items():
            theirs = stock.get("/data", params={"file": ALLTYPES, "path": path, **params})
            if theirs.status_code != 200:
                stock_failures += 1
                continue
            ours = world.get("data", file=FILE, path=path, **params)
            if form in ("bin", "safe") and isinstance(value, h5py.Empty):
                assert ours.status_code == 200 and ours.content == b"", path
                continue
            if form in ("bin", "safe") and np.asarray(value).dtype.hasobject:
                assert ours.status_code == 422 and "json" in ours.json()["detail"], path
                continue
            if ours.status_code != 200:
                differences[f"{form} {path}"] = f"{ours.status_code}: {ours.text[:200]}"
            elif not _same_body(form, ours, theirs):
                differences[f"{form} {path}"] = f"{ours.content[:80]!r} != {theirs.content[:80]!r}"
    assert differences == {}, "\n".join(f"{k}: {v}" for k, v in differences.items())
    assert stock_failures > 0  # the file does reach what stock h5grove cannot serve


def test_links_resolve_like_h5grove(world: H5World) -> None:
    kinds = {p: world.get("meta", file=FILE, path=p).json()["kind"] for p in UNRESOLVED}
    assert kinds == {"/links/soft_broken": "soft_link", "/links/external_missing": "external_link"}
    group = world.get("meta", file=FILE, path="/links/external_group").json()
    assert [c["name"] for c in group["children"]] == ["inside"]
    assert group["children"][0]["shape"] == [3]
