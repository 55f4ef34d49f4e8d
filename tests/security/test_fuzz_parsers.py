"""Hypothesis fuzzing of the parsers that read what callers and files send us.

Each parser has one documented error type; random input must give a result or that error,
never another exception (an IndexError in a parser is a 500 in the web layer):

- ``beamdesk.h5.selection.parse_selection``: ``beamdesk.errors.Invalid`` (422); a parsed selection
  must index a NumPy array of the shape to exactly ``result_shape`` (NumPy is the reference);
- ``beamdesk.h5.paths.clean_relative`` / ``resolve_in_proposal``: ``PathNotFound``; what
  resolves lies inside the proposal folder, whatever the dots, slashes, Unicode and links;
- ``beamdesk.xrf.readers``: ``SpectrumReadError`` for any bytes in .mca/.spe/.csv/.txt;
- ``beamdesk.xrf.config``: ``ConfigError`` for any .cfg text or TOML-shaped dict.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamdesk.errors import Invalid
from beamdesk.h5.paths import PathNotFound, clean_relative, resolve_in_proposal
from beamdesk.h5.selection import parse_selection
from beamdesk.xrf.config import ConfigError, from_pymca_dict, from_toml_dict, read_pymca_dict
from beamdesk.xrf.readers import SpectrumReadError, read_spectrum

EXAMPLES = int(os.environ.get("BEAMDESK_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- selections
member = st.one_of(
    st.integers(-12, 12).map(str),
    st.tuples(
        st.sampled_from(["", "-3", "0", "1", "5", "99", "-1"]),
        st.sampled_from(["", "-3", "0", "2", "7", "99"]),
        st.sampled_from([None, "", "1", "2", "3", "0", "-1", "x"]),
    ).map(lambda t: f"{t[0]}:{t[1]}" + (f":{t[2]}" if t[2] is not None else "")),
    st.text(alphabet=" 0123456789:-,+.eExj\t\u0663", max_size=6),
)
selection_text = st.one_of(st.lists(member, max_size=5).map(",".join), st.text(max_size=30))
shapes = st.one_of(st.none(), st.lists(st.integers(0, 9), max_size=4).map(tuple))


@FUZZ
@given(text=st.one_of(st.none(), selection_text), shape=shapes)
def test_selection_parser_only_refuses_with_its_error(
    text: str | None, shape: tuple[int, ...] | None
) -> None:
    try:
        sel = parse_selection(text, shape)
    except Invalid as exc:
        assert (
            exc.status == 422 and "selection" in exc.detail.lower()
        ) or "empty" in exc.detail.lower(), exc.detail
        return
    if shape is None:
        assert sel.members == ()
        return
    reference = np.empty(shape)[sel.key]
    assert np.shape(reference) == sel.result_shape
    assert sel.size() == int(np.prod(sel.result_shape, dtype=np.int64))


# --------------------------------------------------------------------------- paths
component = st.one_of(
    st.sampled_from(
        [
            ".",
            "..",
            "raw",
            "scan.h5",
            "link_out",
            "loop",
            "secret",
            "",
            "\uff0e\uff0e",
            "\u2024\u2024",
            "..\\..",
            "C:",
            "~",
            "%2e%2e",
            "a\u202eb",
            "a\x00b",
            "\u200b",
            "con",
            "a" * 300,
        ]
    ),
    st.text(max_size=8),
)
relative = st.one_of(st.lists(component, max_size=6).map("/".join), st.text(max_size=40))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A proposal folder with a file, a link out, a link loop and a neighbour's secret."""
    root = tmp_path_factory.mktemp("paths") / "data"
    (root / "20260001" / "raw").mkdir(parents=True)
    (root / "20260001" / "raw" / "scan.h5").write_bytes(b"x")
    (root / "20260002").mkdir()
    (root / "20260002" / "secret").write_text("not yours")
    (root / "20260001" / "raw" / "link_out").symlink_to(root / "20260002")
    (root / "20260001" / "raw" / "loop").symlink_to(root / "20260001" / "raw" / "loop")
    (root / "20260001" / "secret").symlink_to("/etc/passwd")
    return root.resolve()


@FUZZ
@given(relpath=relative)
def test_clean_relative_gives_a_plain_relative_path_or_refuses(relpath: str) -> None:
    try:
        cleaned = clean_relative(relpath)
    except PathNotFound:
        return
    assert not cleaned.startswith("/")
    assert all(part not in {"", ".", ".."} for part in cleaned.split("/") if cleaned)
    assert "\x00" not in cleaned and "\\" not in cleaned


@FUZZ
@given(relpath=relative, number=st.sampled_from(["20260001", "20260002", "..", "", "2026/1"]))
def test_resolved_paths_never_leave_the_proposal(
    data_root: Path, relpath: str, number: str
) -> None:
    try:
        target = resolve_in_proposal(data_root, number, relpath)
    except PathNotFound:
        return
    folder = (data_root / number).resolve()
    assert target == folder or target.is_relative_to(folder), (relpath, target)
    assert target.exists()


# --------------------------------------------------------------------------- XRF readers
spectrum_text = st.one_of(
    st.binary(max_size=600),
    st.lists(
        st.sampled_from(
            [
                "$SPEC_ID:",
                "$DATA:",
                "0 3",
                "0 10",
                "1 2 3 4",
                "-1 5",
                "nan",
                "inf",
                "1e999",
                "@A 1 2 3\\",
                "@A",
                "#@MCA 16C",
                "#@CHANN 4 0 3 1",
                "#S 1",
                "1,2",
                "3;4",
                "a,b",
                "",
                "\t",
                "0xff",
                "1 2",
                "9" * 40,
                "\u00e9",
                "$ENER_FIT:",
                "1.5 0.01",
            ]
        ),
        max_size=30,
    ).map(lambda lines: "\n".join(lines).encode("latin-1", "replace")),
)


@FUZZ
@given(content=spectrum_text, suffix=st.sampled_from([".mca", ".spe", ".csv", ".txt", ".dat"]))
def test_spectrum_readers_only_refuse_with_their_error(
    tmp_path: Path, content: bytes, suffix: str
) -> None:
    path = tmp_path / f"spectrum{suffix}"
    path.write_bytes(content)
    try:
        spectrum = read_spectrum(path)
    except SpectrumReadError:
        return
    counts = np.asarray(spectrum.counts)
    assert counts.ndim == 1 and counts.size > 1 and np.all(np.isfinite(counts))


# --------------------------------------------------------------------------- XRF config
cfg_line = st.one_of(
    st.sampled_from(
        [
            "[fit]",
            "[detector]",
            "[peaks]",
            "[attenuators]",
            "[materials.Water]",
            "[concentrations]",
            "[multilayer]",
            "[a.b.c]",
            "[fit",
            "key = 1",
            "energy = 10.0, 12.0",
            "energy = ",
            "Fe = K",
            "Fe = K, L",
            "stripalgorithm = 1",
            "Matrix = 1, Water, 1.0, 0.1, 45, 45, 0, 90",
            "zero = abc",
            "gain = 0.01",
            "noise = -1",
            "= 3",
            "x=y=z",
            "# c",
            "Kapton = 0, Kapton, 1.42, 0.0125, 1.0",
            "Composition = H, O",
        ]
    ),
    st.text(max_size=20),
)
cfg_text = st.lists(cfg_line, max_size=25).map("\n".join)

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(-1e3, 1e3), st.text(max_size=6)
)
json_like = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                ["zero", "gain", "energy", "name", "x", "Fe", "K", "beam", "materials", "density"]
            )
            | st.text(max_size=5),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=12,
)
toml_dict = st.dictionaries(
    st.sampled_from(
        [
            "peaks",
            "detector",
            "peakshape",
            "fit",
            "filters",
            "beam_filters",
            "detector_layer",
            "matrix",
            "geometry",
            "concentrations",
            "materials",
            "extra",
            "other",
        ]
    ),
    json_like,
    max_size=5,
)


@FUZZ
@given(text=cfg_text)
def test_pymca_cfg_reader_only_refuses_with_its_error(text: str) -> None:
    try:
        d = read_pymca_dict(text, "fuzz.cfg")
        from_pymca_dict(d, "fuzz.cfg")
    except ConfigError:
        return


@FUZZ
@given(d=toml_dict)
def test_toml_config_only_refuses_with_its_error(d: dict) -> None:
    try:
        from_toml_dict(d, "fuzz.toml")
    except ConfigError:
        return
