"""The life of a proposal as a graph of named transitions (pure; no database, no web).

Who may take each transition is decided in :mod:`beamdesk.portal.access`; what a
transition changes besides the state (beamtimes, embargo) is in
:mod:`beamdesk.portal.proposals`.
"""

from __future__ import annotations

from dataclasses import dataclass

from beamdesk.portal.models import ProposalState as S


@dataclass(frozen=True)
class TransitionRule:
    action: str
    sources: frozenset[S]
    target: S
    label: str


def _rule(action: str, sources: set[S], target: S, label: str) -> TransitionRule:
    return TransitionRule(action, frozenset(sources), target, label)


TRANSITIONS: dict[str, TransitionRule] = {
    r.action: r
    for r in [
        _rule("submit", {S.draft}, S.submitted, "Submit"),
        _rule("withdraw", {S.submitted}, S.draft, "Withdraw to draft"),
        _rule("start_feasibility", {S.submitted}, S.feasibility, "Start feasibility check"),
        _rule("feasible", {S.feasibility}, S.under_review, "Feasible: send to review"),
        _rule("not_feasible", {S.feasibility}, S.rejected, "Not feasible: reject"),
        _rule("accept", {S.under_review}, S.accepted, "Accept"),
        _rule("reject", {S.under_review}, S.rejected, "Reject"),
        _rule("schedule", {S.accepted}, S.scheduled, "Schedule beamtime"),
        _rule("collect", {S.scheduled}, S.data_collected, "Data collected"),
        _rule("close", {S.data_collected}, S.closed, "Close"),
        _rule("publish", {S.closed}, S.published, "Publish (DOI record exists)"),
    ]
}


def next_state(state: S, action: str) -> S | None:
    """The state after ``action`` from ``state``, or None when the graph has no such edge."""
    rule = TRANSITIONS.get(action)
    if rule is None or state not in rule.sources:
        return None
    return rule.target


def actions_from(state: S) -> list[TransitionRule]:
    return [r for r in TRANSITIONS.values() if state in r.sources]
