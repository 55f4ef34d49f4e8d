"""Server-rendered portal pages: start, my proposals, proposal, new proposal, reviews, office,
public catalogue. Forms post back here; each handler calls the same services as the API."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from beamdesk.errors import BeamDeskError, NotFound
from beamdesk.jupyter.sessions import access_lost
from beamdesk.portal import access, dashboard, proposals
from beamdesk.portal.access import Action, Identity
from beamdesk.portal.catalogue import proposal_datasets
from beamdesk.portal.collections import published_collections
from beamdesk.portal.directory import beamline_named, beamlines, reviewers, user_named
from beamdesk.portal.lifecycle import TRANSITIONS, actions_from
from beamdesk.portal.models import (
    Dataset,
    GlobalRole,
    MemberRole,
    Proposal,
    ProposalCategory,
    ProposalState,
    User,
)
from beamdesk.portal.proposals import InvalidRequest, PermissionDenied, SampleInput
from beamdesk.web.deps import DB, AppSettings, CurrentIdentity, CurrentUser, Now, proposal_for
from beamdesk.web.problems import sentence
from beamdesk.web.security import verify_csrf

router = APIRouter(include_in_schema=False)
forms = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])


def flash(request: Request, kind: str, text: str) -> None:
    request.session.setdefault("flash", []).append([kind, text])


def render(request: Request, template: str, user: User | None, **context: Any) -> HTMLResponse:
    messages = request.session.pop("flash", [])
    return request.app.state.templates.TemplateResponse(
        request, template, {"user": user, "messages": messages, **context}
    )


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def proposal_or_sign_in(
    request: Request,
    db: Session,
    identity: Identity,
    user: User | None,
    number: str,
    action: Action,
    now: datetime,
) -> Proposal | RedirectResponse:
    """``proposal_for`` for pages: an anonymous visitor the rules refuse is sent to sign in
    (signing in may give access); anyone else refused gets the usual 404."""
    try:
        return proposal_for(db, identity, number, action, now)
    except BeamDeskError:
        if user is None:
            return to_login(request)
        raise


def back_to(number: str) -> RedirectResponse:
    return RedirectResponse(f"/proposals/{number}", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, user: CurrentUser, db: DB, now: Now) -> Response:
    if user is not None:
        return RedirectResponse("/proposals", status_code=303)
    return render(request, "home.html", None, released=dashboard.released_count(db, now))


@router.get("/proposals", response_class=HTMLResponse)
def my_proposals(
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    page: int = Query(1, ge=1),
    state: ProposalState | None = None,
) -> Response:
    if user is None:
        return to_login(request)
    found = dashboard.involved_proposals_page(db, identity, state, page)
    return render(
        request,
        "proposals.html",
        user,
        proposals=found.proposals,
        total=found.total,
        page=page,
        pages=found.pages,
        state=state,
        states=list(ProposalState),
    )


@router.get("/proposals/new", response_class=HTMLResponse)
def new_proposal_form(request: Request, user: CurrentUser, db: DB) -> Response:
    if user is None:
        return to_login(request)
    return render(
        request,
        "proposal_new.html",
        user,
        beamlines=beamlines(db),
        categories=list(ProposalCategory),
        form={},
    )


@forms.post("/proposals/new", response_class=HTMLResponse)
def new_proposal(
    request: Request,
    user: CurrentUser,
    db: DB,
    now: Now,
    title: Annotated[str, Form()] = "",
    abstract: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "new",
    beamline: Annotated[str, Form()] = "",
    shifts: Annotated[int, Form()] = 3,
    sample_name: Annotated[str, Form()] = "",
    sample_formula: Annotated[str, Form()] = "",
    sample_hazards: Annotated[str, Form()] = "",
    safety_declared: Annotated[bool, Form()] = False,
) -> Response:
    if user is None:
        return to_login(request)
    bl = beamline_named(db, beamline) if beamline else None
    samples = (
        [SampleInput(sample_name, sample_formula, sample_hazards, safety_declared)]
        if sample_name.strip()
        else []
    )
    try:
        proposal = proposals.create_proposal(
            db,
            user,
            title=title,
            abstract=abstract,
            category=_choice(ProposalCategory, category),
            beamline=bl,
            shifts_requested=shifts,
            samples=samples,
            now=now,
        )
    except InvalidRequest as exc:
        request.session["flash"] = [["error", sentence(str(exc))]]
        form = {
            "title": title,
            "abstract": abstract,
            "category": category,
            "beamline": beamline,
            "shifts": shifts,
            "sample_name": sample_name,
            "sample_formula": sample_formula,
            "sample_hazards": sample_hazards,
        }
        return render(
            request,
            "proposal_new.html",
            user,
            beamlines=beamlines(db),
            categories=list(ProposalCategory),
            form=form,
        )
    db.commit()
    flash(request, "ok", f"Draft {proposal.number} saved. Submit it when it is complete.")
    return back_to(proposal.number)


@router.get("/proposals/{number}", response_class=HTMLResponse)
def proposal_page(
    number: str,
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
) -> Response:
    proposal = proposal_or_sign_in(request, db, identity, user, number, Action.view_proposal, now)
    if isinstance(proposal, RedirectResponse):
        return proposal
    rel = access.relation(identity, proposal, now)
    may = {a.value for a in Action if access.may(rel, a)}
    datasets: list[Dataset] = []
    total_files = 0
    if "read_data" in may:
        datasets, total_files = proposal_datasets(db, proposal, limit=200)
    return render(
        request,
        "proposal.html",
        user,
        p=proposal,
        rel=rel,
        may=may,
        transitions=[
            t for t in actions_from(proposal.state) if access.may_transition(rel, t.action)
        ],
        reviews=[r for r in proposal.reviews if rel.user_office or r.reviewer_id == user.id]
        if user
        else [],
        my_review=next((r for r in proposal.reviews if user and r.reviewer_id == user.id), None),
        datasets=datasets,
        total_files=total_files,
        reviewers=reviewers(db) if "assign_reviewers" in may else [],
        beamlines=beamlines(db),
        member_roles=[MemberRole.participant, MemberRole.local_contact],
        now=now,
    )


def _guarded(request: Request, number: str, fn: Any) -> RedirectResponse:
    """Run a service call for a form and come back to the proposal with its outcome."""
    try:
        message = fn()
    except PermissionDenied as exc:
        flash(request, "error", exc.detail)
    except InvalidRequest as exc:
        flash(request, "error", sentence(str(exc)))
    else:
        flash(request, "ok", message)
    return back_to(number)


@forms.post("/proposals/{number}/transition")
def transition_form(
    number: str,
    request: Request,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    action: Annotated[str, Form()],
    comment: Annotated[str, Form()] = "",
) -> Response:
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)

    def go() -> str:
        proposals.transition(db, identity, proposal, action, comment=comment, now=now)
        db.commit()
        return (
            f"{TRANSITIONS[action].label}: done. The proposal is now "
            f"{proposal.state.value.replace('_', ' ')}."
        )

    return _guarded(request, number, go)


@forms.post("/proposals/{number}/members")
def add_member_form(
    number: str,
    request: Request,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    username: Annotated[str, Form()],
    role: Annotated[str, Form()] = "participant",
) -> Response:
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)

    def go() -> str:
        member = user_named(db, username.strip())
        if member is None:
            raise InvalidRequest(f"no user called {username!r}")
        proposals.add_member(db, identity, proposal, member, _choice(MemberRole, role), now=now)
        db.commit()
        return f"{member.username} added as {role.replace('_', ' ')}."

    return _guarded(request, number, go)


@forms.post("/proposals/{number}/members/remove")
def remove_member_form(
    number: str,
    request: Request,
    identity: CurrentIdentity,
    db: DB,
    settings: AppSettings,
    now: Now,
    user_id: Annotated[int, Form()],
) -> Response:
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)

    def go() -> str:
        proposals.remove_member(db, identity, proposal, user_id, now=now)
        access_lost(db, settings, user_id, reason=f"removed from {number}", now=now)
        db.commit()
        return "Member removed."

    return _guarded(request, number, go)


@forms.post("/proposals/{number}/reviewers")
def assign_reviewer_form(
    number: str,
    request: Request,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    username: Annotated[str, Form()],
) -> Response:
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)

    def go() -> str:
        reviewer = user_named(db, username)
        if reviewer is None:
            raise InvalidRequest(f"no user called {username!r}")
        proposals.assign_reviewer(db, identity, proposal, reviewer, now=now)
        db.commit()
        return f"{reviewer.username} assigned as reviewer."

    return _guarded(request, number, go)


@forms.post("/proposals/{number}/review")
def review_form(
    number: str,
    request: Request,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    score: Annotated[int, Form()],
    comment: Annotated[str, Form()] = "",
) -> Response:
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)

    def go() -> str:
        proposals.submit_review(db, identity, proposal, score=score, comment=comment, now=now)
        db.commit()
        return "Review saved."

    return _guarded(request, number, go)


E = TypeVar("E", bound=Enum)


def _choice(kind: type[E], value: str) -> E:
    """A form's choice (``<select>``) as its enum; a value it never offers is InvalidRequest."""
    try:
        return kind(value)
    except ValueError as exc:
        raise InvalidRequest(f"{value!r} is not a choice of this form") from exc


def _parse_day(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(f"{field} must be a date and time like 2026-03-01T08:00") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@forms.post("/proposals/{number}/beamtimes")
def beamtime_form(
    number: str,
    request: Request,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    settings: AppSettings,
    beamline: Annotated[str, Form()],
    start: Annotated[str, Form()],
    end: Annotated[str, Form()],
    shifts: Annotated[int, Form()] = 3,
) -> Response:
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)

    def go() -> str:
        bl = beamline_named(db, beamline)
        if bl is None:
            raise InvalidRequest(f"no beamline called {beamline!r}")
        proposals.add_beamtime(
            db,
            identity,
            proposal,
            settings,
            beamline=bl,
            start=_parse_day(start, "start"),
            end=_parse_day(end, "end"),
            shifts=shifts,
            now=now,
        )
        db.commit()
        return f"Beamtime on {bl.name} added."

    return _guarded(request, number, go)


@forms.post("/proposals/{number}/embargo")
def embargo_form(
    number: str,
    request: Request,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    settings: AppSettings,
    op: Annotated[str, Form()],
) -> Response:
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)

    def go() -> str:
        if op == "release":
            proposals.release_early(db, identity, proposal, now=now)
            db.commit()
            return "The data are now open to everyone."
        if op == "extend":
            proposals.extend_embargo(db, identity, proposal, settings, now=now)
            db.commit()
            return f"Embargo extended to {proposal.release_date:%Y-%m-%d}."
        raise InvalidRequest(f"unknown embargo operation {op!r}")

    return _guarded(request, number, go)


@forms.post("/proposals/{number}/doi")
def doi_form(
    number: str,
    request: Request,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    doi: Annotated[str, Form()],
) -> Response:
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)

    def go() -> str:
        proposals.set_doi(db, identity, proposal, doi, now=now)
        db.commit()
        return f"DOI {proposal.doi} recorded."

    return _guarded(request, number, go)


@router.get("/reviews", response_class=HTMLResponse)
def my_reviews(request: Request, user: CurrentUser, db: DB) -> Response:
    if user is None:
        return to_login(request)
    return render(request, "reviews.html", user, reviews=dashboard.reviews_of(db, user))


@router.get("/office", response_class=HTMLResponse)
def office(
    request: Request, user: CurrentUser, identity: CurrentIdentity, db: DB, now: Now
) -> Response:
    """The user office's and beamline scientists' work list: proposals by state."""
    if user is None:
        return to_login(request)
    if user.role not in {GlobalRole.user_office, GlobalRole.scientist}:
        raise NotFound("This page is for the user office and beamline scientists.")
    by_state = dashboard.office_proposals_by_state(db, identity, now)
    return render(request, "office.html", user, by_state=by_state)


@router.get("/office/audit", response_class=HTMLResponse)
def audit_log(
    request: Request,
    user: CurrentUser,
    db: DB,
    action: str = Query("", max_length=64),
    page: int = Query(1, ge=1),
) -> Response:
    """Sign-ins, denials, downloads and transitions: for the user office only."""
    if user is None:
        return to_login(request)
    if user.role != GlobalRole.user_office:
        raise NotFound("This page is for the user office.")
    found = dashboard.audit_page(db, action, page)
    return render(
        request,
        "audit.html",
        user,
        rows=found.rows,
        actions=found.actions,
        action=action,
        total=found.total,
        page=page,
        pages=found.pages,
    )


@router.get("/catalogue", response_class=HTMLResponse)
def catalogue(
    request: Request,
    user: CurrentUser,
    db: DB,
    now: Now,
    q: str = Query("", max_length=200),
    page: int = Query(1, ge=1),
) -> Response:
    """Open data: proposals whose embargo has ended, for everyone."""
    found = dashboard.released_proposals_page(db, now, q, page)
    return render(
        request,
        "catalogue.html",
        user,
        proposals=found.proposals,
        counts=found.dataset_counts,
        q=q,
        total=found.total,
        page=page,
        pages=found.pages,
        collections=published_collections(db, q) if page == 1 else [],
        now=now,
    )


router.include_router(forms)
