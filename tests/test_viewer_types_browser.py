"""Every kind of HDF5 dataset opens in the viewer (H5Web in Debian's chromium) without an error.

Stock H5Web on stock h5grove renders the paths of ``tests/h5/alltypes.py``'s file, so the
viewer must too: no error boundary (H5Web's error fallback, our ViewBoundary), no uncaught
page error, and the explorer tree still on screen after each one, in display and inspect
mode. The demo's compound beamline log once replaced the whole pane, tree included, with
"e.dtype.replace is not a function" (the binning fetcher assumed ``type.dtype`` is a
string; h5grove sends an object for compound types).

The one message allowed, ``H5WEB_OWN``, is H5Web's own for data it cannot draw: the last
test shows it the same with the viewer's requests answered by stock h5grove, which also
proves that the error selector still finds H5Web's error fallback.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import h5py
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from h5grove import fastapi_utils

from beamdesk.demo.files import write_compound_log
from beamdesk.portal.models import ProposalState
from tests.browser import sign_in
from tests.factories import make_proposal, make_world
from tests.h5.alltypes import ALLTYPES, paths_of, write_alltypes

pytestmark = pytest.mark.browser
NUMBER = "20260001"
LOG = "raw/logs/beamline_log.nxs"
FILE = f"raw/{ALLTYPES}"
# Paths reached through links, beyond the file's own hard-linked tree.
THROUGH_LINKS = ["/links/soft_group/table_1d", "/links/external_group/inside"]
# What H5Web shows when something failed: its ErrorFallback (class "error", CSS-module
# hashed), our ViewBoundary, or the text of a JavaScript exception.
ERROR_SELECTOR = (
    "[data-testid=h5web] [class*='_error_'], [data-testid=h5web] [class*='_detailedError_'],"
    " [data-testid=view-error]"
)
JS_ERRORS = ("is not a function", "Cannot read properties", "is undefined", "is not iterable")


@pytest.fixture
def types_world(sessions, settings, built_viewer) -> Path:  # type: ignore[no-untyped-def]
    with sessions() as db:
        world = make_world(db)
        make_proposal(db, world, NUMBER, ProposalState.data_collected)
        db.commit()
    root = settings.data_root / NUMBER
    write_alltypes(root / "raw")
    (root / LOG).parent.mkdir(parents=True)
    write_compound_log(root / LOG, start=datetime(2026, 1, 1, tzinfo=UTC), seed=81)
    return root


@pytest.fixture
def built_viewer() -> None:
    from beamdesk.web.frontend import entry_assets

    if entry_assets("viewer.html") is None:
        pytest.fail("The viewer front end is not built: run 'make frontend'")


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until H5Web has nothing left loading (tree, entity, values, attributes)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=h5web] [data-testid^=Loading]')"
    )
    page.wait_for_timeout(150)  # a value fetched after the entity: let it start and land
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=h5web] [data-testid^=Loading]')"
    )


def _problems(page, errors: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    found = [f"page error: {e}" for e in errors]
    errors.clear()
    shown = page.locator(ERROR_SELECTOR)
    found += [f"error shown: {t.strip()}" for t in shown.all_inner_texts() if t.strip()]
    text = page.get_by_test_id("h5web").inner_text()
    found += [f"exception text: {m}" for m in JS_ERRORS if m in text]
    return found


def _check_open(page, path: str, errors: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """Problems after selecting ``path``: errors shown, or the tree gone."""
    _settle(page)
    problems = _problems(page, errors)
    item = page.locator(f"[data-testid=h5web] [role=treeitem][data-path='{path}']")
    if not item.is_visible():
        problems.append("the explorer tree is not on screen")
    elif item.get_attribute("aria-selected") != "true":
        problems.append("the tree item is not selected")
    return problems


def _open_url(page, base: str, file: str, path: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={quote(file)}&path={quote(path)}")
    page.get_by_test_id("h5web").wait_for()


def _collect_errors(page) -> list[str]:  # type: ignore[no-untyped-def]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_demo_compound_log_opens_with_its_tree(  # type: ignore[no-untyped-def]
    page, live_server, types_world
) -> None:
    errors = _collect_errors(page)
    sign_in(page, live_server.url, "participant")
    for path in ("/entry/log", "/entry/log/table", "/entry", "/"):
        _open_url(page, live_server.url, LOG, path)
        assert _check_open(page, path, errors) == [], path
    # The table itself is shown as a compound matrix with its member names as columns.
    _open_url(page, live_server.url, LOG, "/entry/log/table")
    _settle(page)
    page.get_by_role("tab", name="Compound").wait_for()
    assert page.get_by_text("ring_current_mA").first.is_visible()
    assert _problems(page, errors) == []


def _walk(page, base: str, paths: list[str], *, inspect: bool) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """Open each group by its link (deep link), then each of its children by a click in the
    tree, in H5Web's display or inspect mode; the problems seen, by path."""
    errors = _collect_errors(page)
    groups = ["/", *sorted({p.rsplit("/", 1)[0] or "/" for p in paths} - {"/"})]
    failures: dict[str, list[str]] = {}
    seen: set[str] = set()

    def open_group(group: str) -> list[str]:
        _open_url(page, base, FILE, group)
        if inspect:
            _settle(page)
            page.get_by_role("tab", name="Inspect", exact=True).click()
        return _check_open(page, group, errors)

    for group in groups:
        if problems := open_group(group):
            failures[group] = problems
            continue
        seen.add(group)
        for path in paths:
            parent = path.rsplit("/", 1)[0] or "/"
            if parent != group or path in groups:
                continue
            page.locator(f"[data-testid=h5web] [role=treeitem][data-path='{path}']").click()
            if problems := _check_open(page, path, errors):
                failures[path] = problems
                open_group(group)  # start again from the group
            seen.add(path)
    assert seen == set(groups) | set(paths)
    return failures


def _report(failures: dict[str, list[str]]) -> str:
    return "\n".join(f"{p}: {'; '.join(v)}" for p, v in failures.items())


# H5Web's own messages for data it cannot draw, the same on stock h5grove (checked below
# by serving the viewer from stock h5grove's endpoints): a line of zero points has no range.
H5WEB_OWN = {"/empty/zero_length_f8": ["error shown: Abscissas have undefined domain"]}


def test_every_dataset_kind_opens_without_an_error(  # type: ignore[no-untyped-def]
    page, live_server, types_world
) -> None:
    sign_in(page, live_server.url, "participant")
    paths = paths_of(types_world / FILE) + THROUGH_LINKS
    failures = _walk(page, live_server.url, paths, inspect=False)
    assert failures == H5WEB_OWN, _report(failures)


def test_every_dataset_kind_inspects_without_an_error(  # type: ignore[no-untyped-def]
    page, live_server, types_world
) -> None:
    """The inspector: type descriptions (compound members, enum mappings, …) and attribute
    values of every kind (``/attrs``)."""
    sign_in(page, live_server.url, "participant")
    paths = paths_of(types_world / FILE) + THROUGH_LINKS
    failures = _walk(page, live_server.url, paths, inspect=True)
    assert failures == {}, _report(failures)
    _open_url(page, live_server.url, FILE, "/attrs")
    _settle(page)
    page.get_by_role("tab", name="Inspect", exact=True).click()
    _settle(page)
    attributes = page.get_by_test_id("h5web").inner_text()
    for shown in ('"a string"', "fixed", "<HDF5 object reference>", '"x"'):
        assert shown in attributes, shown


@pytest.fixture
def stock_h5grove(types_world: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(fastapi_utils.settings, "base_dir", str(types_world))
    app = FastAPI()
    app.include_router(fastapi_utils.router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_h5webs_own_messages_are_the_same_on_stock_h5grove(  # type: ignore[no-untyped-def]
    page, live_server, types_world, stock_h5grove
) -> None:
    """The viewer's content requests answered by stock h5grove instead of BeamDesk."""

    def to_stock(route) -> None:  # type: ignore[no-untyped-def]
        url = urlsplit(route.request.url)
        r = stock_h5grove.get(f"/{url.path.rsplit('/', 1)[1]}?{url.query}")
        media = r.headers.get("content-type", "application/octet-stream")
        route.fulfill(status=r.status_code, headers={"content-type": media}, body=r.content)

    sign_in(page, live_server.url, "participant")
    page.route(f"**/api/proposals/{NUMBER}/h5/*", to_stock)
    failures = _walk(page, live_server.url, list(H5WEB_OWN), inspect=False)
    assert failures == H5WEB_OWN, _report(failures)


def test_overlay_and_frame_player_take_every_numeric_kind(  # type: ignore[no-untyped-def]
    page, live_server, types_world, tmp_path: Path
) -> None:
    """Our own views: the overlay lists and plots big-endian, half and long-double floats
    (values as h5py reads them, NaN and infinities kept); the frame player explains why a
    compound dataset is no stack instead of failing."""
    errors = _collect_errors(page)
    sign_in(page, live_server.url, "participant")
    curves = ["/float/f2_be", "/float/f16", "/float/f8_be"]
    query = "&".join(f"y={quote(c)}" for c in curves)
    page.goto(f"{live_server.url}/proposals/{NUMBER}/viewer?file={FILE}&view=overlay&{query}")
    overlay = page.get_by_test_id("overlay")
    legend = page.get_by_test_id("overlay-legend").locator("li")
    legend.nth(2).wait_for()
    overlay.get_by_label("plot /float/f2_be", exact=True).wait_for()  # the list is in
    for listed in ("/int/u8_be", "/int/i1_le", "/enum/enum_u1", "/bool/bool_1d"):
        # Integers of every width are listed; enums and booleans are no series.
        shown = overlay.get_by_label(f"plot {listed}", exact=True).count()
        assert shown == (1 if listed.startswith("/int/") else 0), listed
    with page.expect_download() as info:
        page.get_by_test_id("overlay-csv").click()
    saved = tmp_path / "overlay.csv"
    info.value.save_as(saved)
    rows = [line.split(",") for line in saved.read_text().splitlines()]
    assert rows[0] == ["index", *curves]
    with h5py.File(types_world / FILE, "r") as f:
        for k, name in enumerate(curves, start=1):
            got = np.array([float(r[k].replace("Infinity", "inf")) for r in rows[1:]])
            np.testing.assert_array_equal(got, f[name][()].astype("f8"), err_msg=name)
    assert overlay.locator(".bd-error").count() == 0
    assert page.get_by_test_id("view-error").count() == 0

    page.goto(
        f"{live_server.url}/proposals/{NUMBER}/viewer?file={FILE}"
        "&path=/compound/table_2d&view=frames"
    )
    message = page.get_by_test_id("player-error")
    message.wait_for()
    assert "not a numeric stack" in message.inner_text()
    page.get_by_test_id("mode-h5web").click()
    assert _check_open(page, "/compound/table_2d", errors) == []
