"""The demo facility: people, beamlines, proposals through their life, and their data."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from beamdesk.demo import files
from beamdesk.portal import proposals as svc
from beamdesk.portal.access import identity_of
from beamdesk.portal.auth import create_user
from beamdesk.portal.catalogue import index_data_root
from beamdesk.portal.collections import (
    Collection,
    CollectionInput,
    create_collection,
    publication_config,
    publish,
)
from beamdesk.portal.minting import DraftOnly
from beamdesk.portal.models import (
    Beamline,
    Dataset,
    GlobalRole,
    MemberRole,
    Proposal,
    ProposalCategory,
    ProposalState,
    User,
)
from beamdesk.portal.proposals import SampleInput
from beamdesk.settings import Settings

# Real files from other facilities, next to the project (see the README).
EXAMPLES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"

BEAMLINES = {
    "XRF": (
        "X-ray fluorescence microprobe: 2–20 keV, 1 µm spot, silicon drift detectors",
        "XRF, XANES, micro-tomography",
    ),
    "SAXS": ("Small-angle X-ray scattering: 8 keV, Pilatus 1M, 0.1–5 nm⁻¹", "SAXS, WAXS"),
}

ACCOUNTS: dict[str, tuple[GlobalRole, str, str]] = {
    "alice": (GlobalRole.user, "Alice Rossi", "principal investigator of the demo proposals"),
    "bob": (GlobalRole.user, "Bob Novak", "participant on alice's proposals"),
    "carol": (GlobalRole.reviewer, "Carol Schmidt", "reviewer"),
    "dave": (GlobalRole.scientist, "Dave Kovač", "beamline scientist of XRF and SAXS"),
    "eve": (GlobalRole.user_office, "Eve Horvat", "user office"),
    "mallory": (GlobalRole.user, "Mallory Brown", "a user with no proposals"),
}

XRF_ELEMENTS = {"Ca": "K", "Mn": "K", "Fe": "K", "Cu": "K", "Zn": "K", "Sr": "K", "Pb": "L"}
PANEL_ELEMENTS = {"Ca": "K", "Fe": "K", "Cu": "K", "Hg": "L", "Pb": "L"}

# The path of the demo XRF map dataset, for the docs and the tests of other capabilities.
DEMO_XRF_PROPOSAL = "20260008"
DEMO_XRF_MAP = "raw/xrf/mussel_shell_map.nxs"
DEMO_XRF_DATASET = "/entry/spectra/data"


@dataclass(frozen=True)
class DemoProposal:
    number: str
    title: str
    abstract: str
    beamline: str
    state: ProposalState
    sample: tuple[str, str, str]  # name, formula, hazards
    participants: tuple[str, ...] = ()
    # Days from now of the beamtime's start (negative: in the past); None: no beamtime.
    beamtime_days: int | None = None
    created: datetime | None = None
    doi: str = ""


PROPOSALS = [
    DemoProposal(
        "20260001",
        "Iron speciation in Arctic aerosols",
        "Where does bioavailable iron in Arctic aerosols come from? We map Fe "
        "oxidation states in single particles collected at Ny-Ålesund.",
        "XRF",
        ProposalState.draft,
        ("aerosol filters", "", "none"),
    ),
    DemoProposal(
        "20260002",
        "Copper corrosion layers on bronze statues",
        "Stratigraphy of chloride-rich corrosion on outdoor bronzes.",
        "XRF",
        ProposalState.submitted,
        ("bronze cross-sections", "CuSn", "none"),
    ),
    DemoProposal(
        "20260003",
        "Zinc uptake in maize roots",
        "Zn distribution in roots grown on contaminated soils.",
        "XRF",
        ProposalState.feasibility,
        ("freeze-dried roots", "", "none"),
    ),
    DemoProposal(
        "20260004",
        "Nanoporous silica for catalysis",
        "Pore-size distribution of templated silica during calcination.",
        "SAXS",
        ProposalState.under_review,
        ("SBA-15 powder", "SiO2", "fine powder"),
    ),
    DemoProposal(
        "20260005",
        "Lipid mesophases under pressure",
        "Phase diagram of monoolein mesophases up to 3 kbar.",
        "SAXS",
        ProposalState.accepted,
        ("monoolein", "C21H40O4", "none"),
    ),
    DemoProposal(
        "20260006",
        "Pigment degradation in chrome yellows",
        "Darkening of lead chromate pigments under light.",
        "XRF",
        ProposalState.rejected,
        ("paint flakes", "PbCrO4", "toxic (Cr VI)"),
    ),
    DemoProposal(
        "20260007",
        "Perovskite thin films in operando",
        "Structural evolution of halide perovskites under illumination.",
        "SAXS",
        ProposalState.scheduled,
        ("MAPbI3 films", "CH3NH3PbI3", "toxic (Pb)"),
        participants=("bob",),
        beamtime_days=21,
    ),
    DemoProposal(
        DEMO_XRF_PROPOSAL,
        "Trace metals in Adriatic mussel shells",
        "Growth bands of Mytilus shells record Mn, Zn, Cu and Pb from the seawater "
        "of the northern Adriatic; we map them at 5 µm and take Fe K-edge XANES.",
        "XRF",
        ProposalState.data_collected,
        ("mussel shell sections", "CaCO3", "none"),
        participants=("bob",),
        beamtime_days=-10,
    ),
    DemoProposal(
        "20260009",
        "Protein fibrils in solution",
        "Size and shape of insulin amyloid fibrils during growth.",
        "SAXS",
        ProposalState.closed,
        ("insulin solution", "", "biological, BSL1"),
        participants=("bob",),
        beamtime_days=-60,
    ),
    DemoProposal(
        "20210001",
        "Lead white in Renaissance panel paintings",
        "Elemental maps of lead white and vermilion layers in 16th-century panels.",
        "XRF",
        ProposalState.published,
        ("paint cross-sections", "", "toxic (Pb, Hg)"),
        participants=("bob",),
        created=datetime(2021, 1, 15, 9, tzinfo=UTC),
        doi="10.5072/beamdesk.20210001",
    ),
]

# The lifecycle steps to reach each state, and who takes them.
PATH = [
    "submit",
    "start_feasibility",
    "feasible",
    "accept",
    "schedule",
    "collect",
    "close",
    "publish",
]
TARGET_STEP = {
    ProposalState.draft: 0,
    ProposalState.submitted: 1,
    ProposalState.feasibility: 2,
    ProposalState.under_review: 3,
    ProposalState.accepted: 4,
    ProposalState.scheduled: 5,
    ProposalState.data_collected: 6,
    ProposalState.closed: 7,
    ProposalState.published: 8,
}
ACTOR = {
    "submit": "alice",
    "start_feasibility": "dave",
    "feasible": "dave",
    "accept": "eve",
    "reject": "eve",
    "schedule": "eve",
    "collect": "dave",
    "close": "eve",
    "publish": "eve",
}


@dataclass
class DemoReport:
    passwords: dict[str, str] = field(default_factory=dict)
    existing_users: list[str] = field(default_factory=list)
    new_proposals: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _password(preset: str) -> str:
    return preset or secrets.token_urlsafe(12)


def _accounts(db: Session, report: DemoReport, preset: str) -> dict[str, User]:
    beamlines = {}
    for name, (description, techniques) in BEAMLINES.items():
        beamline = db.scalar(select(Beamline).where(Beamline.name == name))
        if beamline is None:
            beamline = Beamline(name=name, description=description, techniques=techniques)
            db.add(beamline)
        beamlines[name] = beamline
    db.flush()
    users = {}
    for username, (role, full_name, _) in ACCOUNTS.items():
        user = db.scalar(select(User).where(User.username == username))
        if user is None:
            password = _password(preset)
            user = create_user(
                db,
                username,
                role,
                password=password,
                full_name=full_name,
                email=f"{username}@demo.beamdesk.invalid",
            )
            user.affiliation = "CERIC-ERIC demo"
            report.passwords[username] = password
            if role == GlobalRole.scientist:
                user.beamlines.extend(beamlines.values())
        else:
            report.existing_users.append(username)
        users[username] = user
    db.flush()
    return users


def _walk(
    db: Session,
    settings: Settings,
    spec: DemoProposal,
    users: dict[str, User],
    beamline: Beamline,
    now: datetime,
) -> Proposal:
    """Create the proposal and take it through the real lifecycle to its demo state."""
    ident = {name: identity_of(user) for name, user in users.items()}
    when = spec.created or now - timedelta(days=120)
    sample = SampleInput(
        name=spec.sample[0], formula=spec.sample[1], hazards=spec.sample[2], safety_declared=True
    )
    proposal = svc.create_proposal(
        db,
        users["alice"],
        title=spec.title,
        abstract=spec.abstract,
        category=ProposalCategory.new,
        beamline=beamline,
        shifts_requested=6,
        samples=[sample],
        number=spec.number,
        now=when,
    )
    for name in spec.participants:
        svc.add_member(db, ident["alice"], proposal, users[name], MemberRole.participant, now=when)
    if spec.number == DEMO_XRF_PROPOSAL:
        svc.add_member(
            db, ident["alice"], proposal, users["dave"], MemberRole.local_contact, now=when
        )
    steps = PATH[: TARGET_STEP.get(spec.state, 3)]
    if spec.state == ProposalState.rejected:
        steps = ["submit", "start_feasibility", "feasible", "reject"]
    start = (
        spec.created + timedelta(days=60)
        if spec.created
        else now + timedelta(days=spec.beamtime_days or 0)
    )
    for k, step in enumerate(steps):
        at = when + timedelta(days=2 * k + 1)
        if step in ("collect", "close", "publish"):
            at = max(at, start + timedelta(days=2 + k))
        if step == "feasible":
            svc.assign_reviewer(db, ident["eve"], proposal, users["carol"], now=at)
        if step in ("accept", "reject"):
            svc.submit_review(
                db,
                ident["carol"],
                proposal,
                score=5 if step == "accept" else 2,
                comment="Clear plan, feasible in the shifts asked."
                if step == "accept"
                else "The method cannot answer the question.",
                now=at,
            )
        if step == "schedule":
            svc.add_beamtime(
                db,
                ident["eve"],
                proposal,
                settings,
                beamline=beamline,
                start=start,
                end=start + timedelta(hours=48),
                shifts=6,
                now=at,
            )
        if step == "publish":
            svc.set_doi(db, ident["eve"], proposal, spec.doi, now=at)
        svc.transition(
            db,
            ident[ACTOR[step]],
            proposal,
            step,
            now=at,
            comment="" if step != "accept" else "Ranked 3rd of 41 in the panel.",
        )
    return proposal


def _copy_examples(target: Path, report: DemoReport) -> None:
    source = EXAMPLES_DIR / "nexus-examples"
    xrf = EXAMPLES_DIR / "xrf"
    if not source.is_dir():
        report.notes.append(f"{source} not found: the other facilities' files were not copied")
        return
    for folder, dest in (
        (source, target / "raw" / "other-facilities"),
        (xrf, target / "raw" / "xrf" / "reference"),
    ):
        if not folder.is_dir():
            continue
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name != "README.md" and not (dest / path.name).exists():
                shutil.copyfile(path, dest / path.name)
                os.chmod(dest / path.name, 0o644)


def _make(path: Path, report: DemoReport, writer: Callable[[], Any]) -> None:
    if path.exists():
        return
    writer()
    report.files.append(str(path))


def write_data(
    root: Path, report: DemoReport, progress: Callable[[str], None], now: datetime
) -> None:
    """Every demo file that does not exist yet."""
    ago = now - timedelta(days=9)
    p8 = root / DEMO_XRF_PROPOSAL
    _make(
        p8 / DEMO_XRF_MAP,
        report,
        lambda: files.write_xrf_map(
            p8 / DEMO_XRF_MAP,
            rows=60,
            cols=80,
            elements=XRF_ELEMENTS,
            seed=8,
            title="µXRF map of a mussel shell section",
            sample="Mytilus shell, section A",
            start=ago,
        ),
    )
    if not (p8 / "config" / "xrf_map.toml").exists():
        files.save_xrf_configs(p8 / "config", XRF_ELEMENTS)
    for k in range(3):
        path = p8 / "raw" / "xanes" / f"fe_k_xanes_{k + 1:03d}.nxs"
        _make(
            path,
            report,
            partial(
                files.write_xanes_scan,
                path,
                start=ago + timedelta(hours=k),
                seed=80 + k,
                sample=f"growth band {k + 1}",
            ),
        )
    log = p8 / "raw" / "logs" / "beamline_log.nxs"
    _make(log, report, lambda: files.write_compound_log(log, start=ago, seed=81))
    stack = p8 / "raw" / "tomo" / "projections.nxs"
    _make(stack, report, lambda: files.write_projection_stack(stack, start=ago, progress=progress))
    _copy_examples(p8, report)

    p9 = root / "20260009"
    for k, radius in enumerate((4.0, 6.5)):
        path = p9 / "raw" / "saxs" / f"insulin_{k + 1:03d}.nxs"
        _make(
            path,
            report,
            partial(
                files.write_saxs_frames,
                path,
                frames=12,
                start=now - timedelta(days=59) + timedelta(hours=k),
                seed=90 + k,
                radius_nm=radius,
                sample=f"insulin fibrils, {2 * (k + 1)} h",
            ),
        )

    p21 = root / "20210001"
    panel = p21 / "raw" / "xrf" / "panel_cross_section.nxs"
    _make(
        panel,
        report,
        lambda: files.write_xrf_map(
            panel,
            rows=40,
            cols=50,
            elements=PANEL_ELEMENTS,
            seed=21,
            title="µXRF map of a paint cross-section",
            sample="panel 3, lead white layer",
            start=datetime(2021, 3, 17, 10, tzinfo=UTC),
        ),
    )
    if not (p21 / "config" / "xrf_map.toml").exists():
        files.save_xrf_configs(p21 / "config", PANEL_ELEMENTS)
    scan = p21 / "raw" / "xanes" / "fe_k_xanes_001.nxs"
    _make(
        scan,
        report,
        lambda: files.write_xanes_scan(
            scan, start=datetime(2021, 3, 17, 16, tzinfo=UTC), seed=210, sample="ochre layer"
        ),
    )
    for number in ("20260007",):
        (root / number / "raw").mkdir(parents=True, exist_ok=True)


def publish_collection(db: Session, settings: Settings, now: datetime) -> str:
    """The released proposal's data as a citable collection with a (draft) DOI."""
    proposal = db.scalar(select(Proposal).where(Proposal.number == "20210001"))
    if (
        proposal is None
        or db.scalar(select(Collection.id).where(Collection.proposal_id == proposal.id)) is not None
    ):
        return ""
    office = identity_of(db.scalar(select(User).where(User.username == "eve")))
    datasets = db.scalars(
        select(Dataset.id).where(Dataset.proposal_id == proposal.id, Dataset.is_hdf5.is_(True))
    ).all()
    if not datasets:
        return ""
    config = publication_config(settings)
    collection = create_collection(
        db,
        office,
        proposal,
        CollectionInput(
            title="µXRF maps and Fe K-edge XANES of lead white in Renaissance panel paintings",
            abstract=proposal.abstract,
            keywords=["lead white", "vermilion", "cultural heritage", "X-ray fluorescence"],
            related_dois=[],
            dataset_ids=list(datasets),
        ),
        config,
        now=now,
    )
    publish(db, office, collection, DraftOnly(), config, now=now)
    return collection.doi


def create_demo(
    settings: Settings, sessions: sessionmaker[Session], *, console: Any = None
) -> DemoReport:
    """Create whatever of the demo facility is missing; print new passwords once."""

    def say(text: str) -> None:
        if console is not None:
            console.print(text)

    report = DemoReport()
    now = datetime.now(UTC)
    preset = os.environ.get("BEAMDESK_DEMO_PASSWORD", "")
    with sessions() as db:
        users = _accounts(db, report, preset)
        beamlines = {b.name: b for b in db.scalars(select(Beamline))}
        existing = set(db.scalars(select(Proposal.number)))
        for spec in PROPOSALS:
            if spec.number not in existing:
                _walk(db, settings, spec, users, beamlines[spec.beamline], now)
                report.new_proposals.append(spec.number)
        db.commit()
    settings.data_root.mkdir(parents=True, exist_ok=True)
    write_data(settings.data_root, report, lambda text: say(f"  writing {text}"), now)
    with sessions() as db:
        summary = index_data_root(db, settings.data_root, console=console)
        db.commit()
        doi = publish_collection(db, settings, now)
        db.commit()
    if doi:
        say(f"Published the data collection of 20210001 as {doi} (draft DOI)")
    say(
        f"Demo facility: {len(report.new_proposals)} proposals created, "
        f"{len(report.files)} files written; catalogue: {summary.summary()}"
    )
    for note in report.notes:
        say(f"[yellow]{note}[/yellow]")
    if report.passwords:
        say("Demo accounts (the passwords are shown only now):")
        for name, password in report.passwords.items():
            role = ACCOUNTS[name][2]
            say(f"  {name:8} {password:20} {role}")
    if report.existing_users:
        say(f"Accounts already present (passwords unchanged): {', '.join(report.existing_users)}")
    say(f"Data root: {settings.data_root}")
    return report
