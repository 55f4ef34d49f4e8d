"""Builders for the HDF5 API tests: a file with every HDF5 type, a client wrapper."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
from fastapi.testclient import TestClient

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NUMBER = "20260001"
OTHER = "20260002"
RNG = np.random.default_rng(7)


def write_types(path: Path) -> None:
    """One dataset per HDF5 type class and storage option."""
    with h5py.File(path, "w") as f:
        f.attrs["NX_class"] = "NXroot"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        f["int8"] = np.arange(-5, 5, dtype="i1")
        f["uint64"] = np.arange(10, dtype="u8") * (2**40)
        f["int32_be"] = np.arange(12, dtype=">i4").reshape(3, 4)
        f["f2"] = np.linspace(0, 1, 7, dtype="f2")
        f["f4"] = RNG.random((5, 6), dtype=np.float32)
        f["f8"] = RNG.random((4, 3, 2))
        f["f16"] = np.linspace(0, 1, 5).astype(np.longdouble)
        f["c8"] = (RNG.random(6) + 1j * RNG.random(6)).astype("c8")
        f["c16"] = RNG.random((2, 3)) + 1j * RNG.random((2, 3))
        f["bool"] = np.array([True, False, True])
        f.create_dataset(
            "enum",
            data=np.array([0, 1, 2, 1], dtype="u1"),
            dtype=h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 2}, basetype="u1"),
        )
        f["fixed_ascii"] = np.array([b"alpha", b"be", b"gamma"], dtype="S5")
        f.create_dataset("vlen_utf8", data=["café", "☕", "x"], dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("vlen_ascii", data=[b"a", b"bc"], dtype=h5py.string_dtype("ascii"))
        f["scalar_str"] = "Elettra"
        f["scalar_f"] = 3.5
        f["scalar_i"] = np.int16(-2)
        f["compound"] = np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "<i4"), ("b", "<f8")])
        f["array_t"] = (
            np.array([[1, 2, 3], [4, 5, 6]], dtype="(3,)i2").reshape(2)
            if False
            else np.zeros(2, dtype=np.dtype(("<i2", (3,))))
        )
        f["opaque"] = np.array([b"\x01\x02", b"\x03\x04"], dtype="V2")
        f["empty"] = h5py.Empty("f4")
        f["zero_len"] = np.zeros((0, 3), dtype="f4")
        f["ref"] = f["f4"].ref
        f.create_dataset("refs", data=[f["f4"].ref, entry.ref], dtype=h5py.ref_dtype)
        big = RNG.integers(0, 1000, size=(64, 80)).astype("u2")
        for name, filt in {
            "gzip": {"compression": "gzip"},
            "bitshuffle": hdf5plugin.Bitshuffle(),
            "lz4": hdf5plugin.LZ4(),
            "blosc": hdf5plugin.Blosc(),
            "zstd": hdf5plugin.Zstd(),
        }.items():
            f.create_dataset(f"compressed/{name}", data=big, chunks=(16, 40), **filt)
        f["entry/data/signal"] = np.arange(20.0)
        f["entry/data/signal"].attrs["units"] = "counts"
        f["entry/data"].attrs["NX_class"] = "NXdata"
        f["entry/data"].attrs["signal"] = "signal"
        f["soft"] = h5py.SoftLink("/f4")
        f["soft_broken"] = h5py.SoftLink("/nowhere")
        f["ext_inside"] = h5py.ExternalLink("ext_target.h5", "/values")
        f["ext_missing"] = h5py.ExternalLink("missing.h5", "/values")
        f["ext_other_proposal"] = h5py.ExternalLink(f"../../{OTHER}/secret.h5", "/values")
        f["ext_absolute"] = h5py.ExternalLink("/tmp/beamdesk-does-not-matter.h5", "/v")
        f["ext_symlink_out"] = h5py.ExternalLink("link_out.h5", "/values")
        f["dtype_committed"] = np.dtype("<f4")


@dataclass
class H5World:
    client: TestClient
    root: Path  # the proposal folder
    tokens: dict[str, str]
    secret: Path

    def auth(self, who: str = "pi") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, endpoint: str, who: str | None = "pi", number: str = NUMBER, **params: object):  # type: ignore[no-untyped-def]
        headers = self.auth(who) if who else {}
        return self.client.get(
            f"/api/proposals/{number}/h5/{endpoint}", params=params, headers=headers
        )
