"""Pydantic shapes of the API: request bodies, answers and problem details (errors).

Every /api operation declares its answer with one of these (``response_model=``) and its
errors with ``api_errors()``, so the OpenAPI document, and the front end's types generated
from it (frontend/src/common/api.gen.ts), describe every answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel

from beamdesk.portal import access
from beamdesk.portal.access import Action, Relation
from beamdesk.portal.lifecycle import actions_from
from beamdesk.portal.models import MemberRole, Proposal, ProposalCategory

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    # False when ``total`` is a lower bound (broad searches stop counting at 1,000).
    total_exact: bool = True


class SampleIn(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    formula: str = ""
    hazards: str = ""
    safety_declared: bool = False


class ProposalIn(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    abstract: str = ""
    category: ProposalCategory = ProposalCategory.new
    beamline: str | None = Field(None, description="Name of the beamline asked for")
    shifts_requested: int = Field(3, ge=1, le=60)
    samples: list[SampleIn] = []


class ProposalPatch(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=300)
    abstract: str | None = None
    category: ProposalCategory | None = None
    samples: list[SampleIn] | None = None


class TransitionIn(BaseModel):
    comment: str = ""


class MemberIn(BaseModel):
    username: str
    role: MemberRole = MemberRole.participant


class ReviewerIn(BaseModel):
    username: str


class ReviewIn(BaseModel):
    score: int = Field(ge=1, le=5)
    comment: str = ""


class BeamtimeIn(BaseModel):
    beamline: str
    start: datetime
    end: datetime
    shifts: int = Field(3, ge=1, le=60)


class DoiIn(BaseModel):
    doi: str


class ProposalSummary(BaseModel):
    number: str
    title: str
    state: str
    category: str
    beamline: str | None
    release_date: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, p: Proposal) -> ProposalSummary:
        return cls(
            number=p.number,
            title=p.title,
            state=p.state.value,
            category=p.category.value,
            beamline=p.beamline.name if p.beamline else None,
            release_date=p.release_date,
            created_at=p.created_at,
        )


class MemberOut(BaseModel):
    username: str
    full_name: str
    role: str


class SampleOut(SampleIn):
    pass


class BeamtimeOut(BaseModel):
    beamline: str
    start: datetime
    end: datetime
    shifts: int


class ReviewOut(BaseModel):
    reviewer: str
    score: int | None
    comment: str
    submitted_at: datetime | None


class TransitionOut(BaseModel):
    action: str
    from_state: str
    to_state: str
    actor: str | None
    comment: str
    at: datetime


class ProposalDetail(ProposalSummary):
    abstract: str
    shifts_requested: int
    embargo_extended: bool
    doi: str
    released: bool
    members: list[MemberOut]
    samples: list[SampleOut]
    beamtimes: list[BeamtimeOut]
    reviews: list[ReviewOut]
    history: list[TransitionOut]
    may: list[str] = Field(description="Actions the caller may take now")
    transitions: list[str] = Field(description="Lifecycle transitions the caller may take now")

    @classmethod
    def build(cls, p: Proposal, rel: Relation, viewer_id: int | None) -> ProposalDetail:
        # Reviews are confidential: the user office sees all, a reviewer their own.
        reviews = [
            ReviewOut(
                reviewer=r.reviewer.username,
                score=r.score,
                comment=r.comment,
                submitted_at=r.submitted_at,
            )
            for r in p.reviews
            if rel.user_office or r.reviewer_id == viewer_id
        ]
        summary = ProposalSummary.of(p).model_dump()
        return cls(
            **summary,
            abstract=p.abstract,
            shifts_requested=p.shifts_requested,
            embargo_extended=p.embargo_extended,
            doi=p.doi,
            released=rel.released,
            members=[
                MemberOut(username=m.user.username, full_name=m.user.full_name, role=m.role.value)
                for m in p.members
            ],
            samples=[
                SampleOut(
                    name=s.name,
                    formula=s.formula,
                    hazards=s.hazards,
                    safety_declared=s.safety_declared,
                )
                for s in p.samples
            ],
            beamtimes=[
                BeamtimeOut(beamline=b.beamline.name, start=b.start, end=b.end, shifts=b.shifts)
                for b in p.beamtimes
            ],
            reviews=reviews,
            history=[
                TransitionOut(
                    action=t.action,
                    from_state=t.from_state,
                    to_state=t.to_state,
                    actor=t.actor.username if t.actor else None,
                    comment=t.comment,
                    at=t.at,
                )
                for t in p.transitions
            ],
            may=[a.value for a in Action if access.may(rel, a)],
            transitions=[
                t.action for t in actions_from(p.state) if access.may_transition(rel, t.action)
            ],
        )


# --- errors --------------------------------------------------------------------------------


class ProblemDetails(BaseModel):
    """An error answer (RFC 9457), as beamdesk.web.problems.problem_response sends it."""

    type: str = Field("about:blank", examples=["about:blank"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(description="What went wrong and what to do about it")
    message: str = Field(description="The detail again, for h5grove and H5Web clients")
    request_id: str | None = Field(None, description="To quote when reporting a 500")


PROBLEM_MEDIA_TYPE = "application/problem+json"
# Every /api operation may answer these; routers add their own (api_errors(409)).
COMMON_ERRORS = (401, 403, 404, 422, 500, 503)


def api_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a router or route: problem details for the common error statuses
    and ``statuses``, under application/problem+json (the media type they are sent with)."""
    problem = {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
    return {
        status: {"model": ProblemDetails, "content": {PROBLEM_MEDIA_TYPE: problem}}
        for status in sorted({*COMMON_ERRORS, *statuses})
    }


def media(*types: str, description: str = "") -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a 200 answer that is not JSON (files, images, event streams), or
    may be JSON of any shape as well (h5grove's /data)."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    anything: dict[str, Any] = {"schema": {}}
    answer: dict[str, Any] = {
        "content": {t: anything if t.endswith("json") else binary for t in types}
    }
    if description:
        answer["description"] = description
    return {200: answer}


class Open(BaseModel):
    """An answer whose listed fields are documented and whose other fields pass through
    (h5grove's metadata, PaNOSC objects with their ``include`` relations, fit results)."""

    model_config = ConfigDict(extra="allow")


# --- health, account, tokens ---------------------------------------------------------------


class Health(BaseModel):
    status: str
    version: str


class Readiness(BaseModel):
    database: str = Field(description='"ok" or "failing"')
    data_root: str
    dask: str = Field(description='"ok", "failing" or "not configured"')
    detail: str | None = Field(None, description="Which parts fail, when some do")


class Me(BaseModel):
    id: int
    username: str
    full_name: str
    email: str
    role: str
    beamlines: list[str]


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    state: str = Field(description='"active", "expired" or "revoked"')


class NewTokenOut(BaseModel):
    id: int
    token: str = Field(description="The secret: shown in this answer only")
    prefix: str
    expires_at: str | None


class AccountOut(BaseModel):
    username: str
    full_name: str
    email: str
    role: str
    active: bool
    has_password: bool
    single_sign_on: bool


class AccountPage(BaseModel):
    total: int
    items: list[AccountOut]


class BeamlineOut(BaseModel):
    name: str
    description: str
    techniques: str


# --- files and HDF5 ------------------------------------------------------------------------


class FolderEntry(BaseModel):
    name: str
    path: str
    kind: str = Field(description='"folder" or "file"')
    size: int
    mtime: str
    is_hdf5: bool


class FolderListing(BaseModel):
    path: str
    parent: str | None
    truncated: bool
    entries: list[FolderEntry]


class H5Entity(Open):
    """h5grove's /meta: a group (with its children), dataset, datatype or link."""

    name: str
    kind: str = Field(description="group, dataset, datatype, soft_link or external_link")
    attributes: list[dict[str, Any]] | None = None
    children: list[H5Entity] | None = None


class H5Attributes(RootModel[dict[str, Any]]):
    """Attribute values by name."""


class H5Stats(BaseModel):
    strict_positive_min: float | None
    positive_min: float | None
    min: float | None
    max: float | None
    mean: float | None
    std: float | None


# --- collections, PaNOSC -------------------------------------------------------------------


class CollectionItemOut(BaseModel):
    id: int
    path: str
    size: int | None


class CollectionOut(BaseModel):
    id: int
    proposal: str
    title: str
    abstract: str
    creators: list[dict[str, Any]]
    keywords: list[str]
    techniques: list[str]
    instrument: str
    licence: str
    related_dois: list[str]
    doi: str
    doi_state: str = Field(description='"", "draft" or "findable"')
    published_at: str | None
    release_date: str | None
    released: bool
    datasets: list[CollectionItemOut]


class PanoscObject(Open):
    """A PaNOSC search API object; ``fields`` and ``include`` filters shape it."""

    id: str | None = None
    pid: str | None = None


class Count(BaseModel):
    count: int


# --- jobs ----------------------------------------------------------------------------------


class JobOutput(Open):
    path: str = Field(description="The result file, relative to the proposal")
    dataset_id: int | None = None
    kind: str | None = None
    groups: list[str] | None = None


class JobSummary(BaseModel):
    id: int
    kind: str
    proposal: str
    owner: str
    state: str
    progress: float
    message: str
    input: str | None
    config_file: str | None
    inputs: list[str]
    outputs: list[JobOutput]
    attempts: int
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    cancel_requested: bool


class JobDetail(JobSummary):
    log: str
    parameters: dict[str, Any]


# --- XRF -----------------------------------------------------------------------------------


class FitGroup(BaseModel):
    area: float
    sigma: float
    mass_fraction: float | None
    mass_fraction_sigma: float | None


class FitResult(Open):
    calibration: dict[str, float]
    start_calibration: dict[str, float]
    noise: float
    fano: float
    chi2_reduced: float | None
    quantification: dict[str, Any]
    groups: dict[str, FitGroup]
    channels: list[float | None]
    energy: list[float | None]
    data: list[float | None]
    fit: list[float | None]
    background: list[float | None]
    residuals: list[float | None]
    contributions: dict[str, list[float | None]]
    spectrum: dict[str, list[float | None]]
    source: dict[str, Any]


class SpectrumOut(BaseModel):
    counts: list[float | None]
    map_shape: list[int] | None


class SpectraInFile(BaseModel):
    file: str
    datasets: list[dict[str, Any]]


class LineOut(BaseModel):
    element: str
    group: str
    line: str
    energy: float
    rate: float
    distance: float


class Identified(BaseModel):
    energy: float
    lines: list[LineOut]


class ElementOut(BaseModel):
    z: int
    symbol: str
    groups: dict[str, dict[str, Any]] = Field(description="K, L, M: energy, edge, excited")


class ElementTable(BaseModel):
    excitation: float | None
    elements: list[ElementOut]


class ConfigOut(BaseModel):
    file: str
    config: dict[str, Any]
    format: str = Field(description='"toml" or "cfg"')
    text: str | None = Field(None, description="The file in the format asked for by ``to``")


class ConfigList(BaseModel):
    folder: str
    files: list[str]


class ConfigSaved(BaseModel):
    file: str
    bytes: int


class RoiMaps(BaseModel):
    shape: list[int]
    maps: dict[str, list[float | None]] = Field(description="Window name: counts, map order")


class ResultInfo(BaseModel):
    file: str
    groups: list[str]
    maps: dict[str, str] = Field(description="Group: path of its map, for /h5/data")


class RgbChannel(BaseModel):
    group: str
    scaling: str
    transform: str
    scaled: list[float | None]
    min: float | None
    max: float | None


class Scatter(BaseModel):
    x_group: str
    y_group: str
    x: list[float | None]
    y: list[float | None]
    pearson_r: float | None


class RgbOut(BaseModel):
    shape: list[int]
    channels: dict[str, RgbChannel] = Field(description="red, green, blue: those chosen")
    scatter: Scatter
