"""Regenerate migrations/versions/0001_initial.py from the models.

Only while BeamDesk has no installation to upgrade: after the first release, add new
revisions with ``alembic revision --autogenerate`` instead.
"""

from __future__ import annotations

import tempfile

from alembic import command

from beamdesk.migrate import MIGRATIONS, alembic_config

target = MIGRATIONS / "versions" / "0001_initial.py"
target.unlink(missing_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    cfg = alembic_config(f"sqlite:///{tmp}/empty.db")
    command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
made = next((MIGRATIONS / "versions").glob("0001_*.py"))
made.rename(target)
print(f"wrote {target}")
