"""Routes are thin (docs/architecture.md): they parse, call a service and answer. No module
of beamdesk/web/routes opens HDF5 itself or runs a database query of its own; those live
in the services (portal, jobs, jupyter) and in h5/xrf."""

from __future__ import annotations

import ast
from pathlib import Path

ROUTES = Path(__file__).resolve().parents[1] / "beamdesk" / "web" / "routes"
QUERY_METHODS = {"scalars", "scalar", "execute", "get"}
# Routes that may still do some of it, each with the reason in a comment: none today.
# An entry is a debt, not a permission: keep this list short and shrinking.
NOT_YET_MOVED: dict[str, set[str]] = {}


def offences(path: Path) -> set[str]:
    """What in ``path`` a thin route must not do: import h5py, call ``select(...)``, or
    call ``db.scalars``/``db.scalar``/``db.execute``/``db.get`` on a session."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import | ast.ImportFrom) and "h5py" in imported_roots(node):
            found.add("h5py")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "select":
                found.add("select")
            elif (
                isinstance(func, ast.Attribute)
                and func.attr in QUERY_METHODS
                and isinstance(func.value, ast.Name)
                and func.value.id == "db"
            ):
                found.add(f"db.{func.attr}")
    return found


def imported_roots(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.ImportFrom):
        return {(node.module or "").split(".")[0]} if node.level == 0 else set()
    return {a.name.split(".")[0] for a in node.names}


def test_routes_open_no_hdf5_and_run_no_queries() -> None:
    found = {p.name: offences(p) for p in sorted(ROUTES.glob("*.py"))}
    assert len(found) > 10  # the routes are where we think they are
    unexpected = {
        name: sorted(what - NOT_YET_MOVED.get(name, set())) for name, what in found.items()
    }
    assert {name: what for name, what in unexpected.items() if what} == {}
    # An entry whose queries have moved comes off the list.
    stale = {name for name in NOT_YET_MOVED if not found.get(name)}
    assert stale == set()


def test_the_check_sees_what_it_forbids(tmp_path: Path) -> None:
    route = tmp_path / "route.py"
    route.write_text(
        "import h5py\nfrom sqlalchemy import select\n\n"
        "def page(db):\n"
        "    db.scalars(select(User))\n"
        "    db.execute(q)\n"
        "    db.commit()\n"
        "    request.session.get('flash')\n"
    )
    assert offences(route) == {"h5py", "select", "db.scalars", "db.execute"}
    route.write_text("from h5py import File\n\ndef ok(db):\n    db.commit()\n")
    assert offences(route) == {"h5py"}
