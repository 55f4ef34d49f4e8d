"""Who may call each endpoint: the expectation table of ``test_endpoint_matrix.py``.

Every (method, path) of the app, API and pages alike, must be listed in ``EXPECTATIONS``
with the rule it follows; the matrix test fails naming any endpoint that is not. The rules
are written from the design ("People and rules" in the shared design) and the actions of
``beamdesk.portal.access``, not from the code they check:

- anyone sees a proposal and reads its data once its release date has passed;
- members (PI, participants) see their proposals in every state, with data;
- the PI edits the draft, manages members, releases early or extends the embargo once;
- an assigned reviewer sees the proposal (never its data) and reviews while under review;
- a beamline scientist sees the proposals of their beamline once submitted, with data;
- the user office sees and reads everything and drives the lifecycle.

When you add an endpoint: add a line here with the rule it follows (add a rule if none
fits, with its definition in ``proposal_allows`` or ``GLOBAL_RULES``), and, if it has a
path parameter the matrix has never seen, a value for it in ``test_endpoint_matrix.py``
(``path_values``).
"""

from __future__ import annotations

from dataclasses import dataclass

from beamdesk.portal.models import ProposalState

S = ProposalState

PERSONAS = [
    "anonymous",
    "outsider",
    "pi",
    "participant",
    "reviewer",
    "scientist",
    "other_scientist",
    "office",
]
MEMBERS = {"pi", "participant"}
SIGNED_IN = set(PERSONAS) - {"anonymous"}

# Rules that do not depend on a proposal: persona -> allowed.
GLOBAL_RULES: dict[str, set[str]] = {
    "public": set(PERSONAS),
    "signed_in": SIGNED_IN,
    "user_office": {"office"},
    "staff_or_office": {"scientist", "other_scientist", "office"},
}
# Answers only checked for "never a 5xx" (e.g. single sign-on when none is configured).
ANY = "any"
# Refused to every persona (401, 403 or 404): /metrics is for loopback clients or the
# metrics token, and the test client is neither (tests/test_metrics.py checks both).
NOBODY = "nobody"

# The transition tried on a proposal in each state, and who may take it (design lifecycle).
TRANSITION_FROM: dict[S, tuple[str, set[str]]] = {
    S.draft: ("submit", {"pi"}),
    S.submitted: ("start_feasibility", {"scientist", "office"}),
    S.feasibility: ("feasible", {"scientist", "office"}),
    S.under_review: ("accept", {"office"}),
    S.accepted: ("schedule", {"office"}),
    S.scheduled: ("collect", {"scientist", "office"}),
    S.data_collected: ("close", {"scientist", "office"}),
    S.closed: ("publish", set()),  # needs a DOI, which no test proposal has when closed
    S.rejected: ("submit", set()),
    S.published: ("submit", set()),
}


@dataclass(frozen=True)
class Variant:
    """One test proposal: its state and embargo ("none", "embargoed", "released")."""

    number: str
    state: S
    embargo: str

    @property
    def released(self) -> bool:
        return self.embargo == "released"

    @property
    def has_release_date(self) -> bool:
        return self.embargo != "none"

    @property
    def collection_published(self) -> bool:
        # The matrix publishes the collection of the published proposal only.
        return self.state == S.published


VARIANTS = [
    Variant("20260101", S.draft, "none"),
    Variant("20260102", S.under_review, "none"),
    Variant("20260103", S.scheduled, "embargoed"),
    Variant("20260104", S.closed, "embargoed"),
    Variant("20260105", S.published, "released"),
]


def proposal_sees(persona: str, v: Variant) -> bool:
    """May ``persona`` see proposal ``v`` at all (else every proposal route answers 404)?"""
    staff = persona == "scientist" and v.state != S.draft
    return persona == "office" or persona in MEMBERS or persona == "reviewer" or staff or v.released


def proposal_allows(rule: str, persona: str, v: Variant) -> bool:
    """The design's answer for one proposal-scoped rule."""
    office, pi, member = persona == "office", persona == "pi", persona in MEMBERS
    staff = persona == "scientist" and v.state != S.draft
    open_data = v.has_release_date and not v.released
    if rule == "view_proposal":
        return proposal_sees(persona, v)
    if rule == "read_data_signed_in":  # data, from a signed-in browser session
        return persona != "anonymous" and proposal_allows("read_data", persona, v)
    if rule in {"read_data", "download_collection"}:
        return office or member or staff or v.released
    if rule == "edit_proposal":
        return pi and v.state == S.draft
    if rule == "manage_members":
        return (pi or office) and v.state not in {S.closed, S.published}
    if rule == "write_review":
        return persona == "reviewer" and v.state == S.under_review
    if rule == "assign_reviewers":
        return office and v.state in {S.feasibility, S.under_review}
    if rule == "add_beamtime":
        return office and v.state in {S.accepted, S.scheduled}
    if rule in {"release_early", "extend_embargo"}:
        return (pi or office) and open_data
    if rule == "run_job":
        return office or member or staff
    if rule == "set_doi":
        return office and v.state in {S.closed, S.published}
    if rule == "transition":
        return persona in TRANSITION_FROM[v.state][1]
    if rule == "edit_collection":
        return pi or office
    if rule == "see_collection":
        return v.collection_published or office or member or staff
    if rule == "doi_landing":
        return v.collection_published
    if rule == "view_job":  # the job's owner (the PI here) or anyone who may run jobs
        return office or member or staff
    if rule == "cancel_job":
        return pi or office or staff
    raise AssertionError(f"unknown rule {rule!r}")


PROPOSAL_RULES = {
    "view_proposal",
    "read_data",
    "edit_proposal",
    "manage_members",
    "write_review",
    "assign_reviewers",
    "add_beamtime",
    "release_early",
    "extend_embargo",
    "run_job",
    "set_doi",
    "transition",
    "edit_collection",
    "see_collection",
    "download_collection",
    "doi_landing",
    "view_job",
    "cancel_job",
    "read_data_signed_in",
}

# Rules whose refusal is a plain 404 even for someone who sees the proposal (data, jobs,
# collections are "not found" rather than "forbidden" to them).
HIDDEN_WHEN_DENIED = {
    "read_data",
    "read_data_signed_in",
    "download_collection",
    "doi_landing",
    "view_job",
    "see_collection",
}

# (method, path) -> rule. Page forms gated by "view_proposal" report finer refusals
# (e.g. a participant trying to accept) as a message on the proposal page, not a status.
EXPECTATIONS: dict[tuple[str, str], str] = {
    # --- machinery and account
    ("GET", "/api/openapi.json"): "public",
    ("GET", "/api/docs"): "public",
    ("GET", "/api/redoc"): "public",
    ("GET", "/api/health"): "public",
    ("GET", "/api/ready"): "public",
    ("GET", "/metrics"): NOBODY,
    ("GET", "/login"): "public",
    ("POST", "/login"): "public",
    ("POST", "/logout"): "public",
    ("GET", "/login/oidc"): ANY,
    ("GET", "/login/oidc/callback"): ANY,
    ("GET", "/api/me"): "signed_in",
    ("GET", "/tokens"): "signed_in",
    ("POST", "/tokens"): "signed_in",
    ("POST", "/tokens/{token_id}/revoke"): "signed_in",  # own tokens only
    ("GET", "/api/tokens"): "signed_in",
    ("POST", "/api/tokens"): "signed_in",
    ("DELETE", "/api/tokens/{token_id}"): "signed_in",
    ("GET", "/account"): "signed_in",
    ("POST", "/account/password"): "signed_in",  # own password, the current one required
    ("POST", "/api/me/password"): "signed_in",
    ("GET", "/office/accounts"): "user_office",
    ("POST", "/office/accounts/{username}/password"): "user_office",
    ("POST", "/office/accounts/{username}/active"): "user_office",
    ("GET", "/api/users"): "user_office",
    ("POST", "/api/users/{username}/password"): "user_office",
    ("POST", "/api/users/{username}/disable"): "user_office",
    ("POST", "/api/users/{username}/enable"): "user_office",
    # --- proposals API
    ("GET", "/api/beamlines"): "public",
    ("GET", "/api/proposals"): "public",  # filtered to what the caller may see
    ("POST", "/api/proposals"): "signed_in",
    ("GET", "/api/proposals/{number}"): "view_proposal",
    ("PATCH", "/api/proposals/{number}"): "edit_proposal",
    ("POST", "/api/proposals/{number}/transitions/{action}"): "transition",
    ("POST", "/api/proposals/{number}/members"): "manage_members",
    ("DELETE", "/api/proposals/{number}/members/{username}"): "manage_members",
    ("POST", "/api/proposals/{number}/reviewers"): "assign_reviewers",
    ("POST", "/api/proposals/{number}/review"): "write_review",
    ("POST", "/api/proposals/{number}/beamtimes"): "add_beamtime",
    ("POST", "/api/proposals/{number}/embargo/release"): "release_early",
    ("POST", "/api/proposals/{number}/embargo/extend"): "extend_embargo",
    ("POST", "/api/proposals/{number}/doi"): "set_doi",
    # --- catalogue, files, HDF5
    ("GET", "/api/proposals/{number}/datasets"): "read_data",
    ("GET", "/api/datasets"): "public",  # filtered to what the caller may read
    ("GET", "/api/proposals/{number}/files/{path:path}"): "read_data",
    ("GET", "/api/proposals/{number}/h5/"): "read_data",  # h5grove's status check
    ("GET", "/api/proposals/{number}/h5/meta"): "read_data",
    ("GET", "/api/proposals/{number}/h5/attr"): "read_data",
    ("GET", "/api/proposals/{number}/h5/paths"): "read_data",
    ("GET", "/api/proposals/{number}/h5/stats"): "read_data",
    ("GET", "/api/proposals/{number}/h5/data"): "read_data",
    ("GET", "/api/proposals/{number}/h5/subset"): "read_data",
    ("GET", "/api/proposals/{number}/h5/line"): "read_data",
    ("GET", "/api/proposals/{number}/browse"): "read_data",
    ("GET", "/proposals/{number}/viewer"): "read_data",
    # --- portal pages and their forms
    ("GET", "/"): "public",
    ("GET", "/proposals"): "signed_in",
    ("GET", "/proposals/new"): "signed_in",
    ("POST", "/proposals/new"): "signed_in",
    ("GET", "/proposals/{number}"): "view_proposal",
    ("GET", "/reviews"): "signed_in",
    ("GET", "/office"): "staff_or_office",
    ("GET", "/office/audit"): "user_office",
    ("GET", "/catalogue"): "public",
    ("GET", "/datasets"): "public",  # data search page, filtered to what the caller may read
    ("POST", "/proposals/{number}/transition"): "view_proposal",
    ("POST", "/proposals/{number}/members"): "view_proposal",
    ("POST", "/proposals/{number}/members/remove"): "view_proposal",
    ("POST", "/proposals/{number}/reviewers"): "view_proposal",
    ("POST", "/proposals/{number}/review"): "view_proposal",
    ("POST", "/proposals/{number}/beamtimes"): "view_proposal",
    ("POST", "/proposals/{number}/embargo"): "view_proposal",
    ("POST", "/proposals/{number}/doi"): "view_proposal",
    # --- data collections and DOIs
    ("GET", "/proposals/{number}/collections"): "view_proposal",
    ("GET", "/proposals/{number}/collections/new"): "edit_collection",
    ("POST", "/proposals/{number}/collections/new"): "view_proposal",  # refusal: a message
    ("GET", "/collections/{collection_id}"): "see_collection",
    ("GET", "/collections/{collection_id}/edit"): "edit_collection",
    ("POST", "/collections/{collection_id}/edit"): "see_collection",  # refusal: a message
    ("POST", "/collections/{collection_id}/publish"): "see_collection",  # refusal: a message
    ("GET", "/collections/{collection_id}/download.zip"): "download_collection",
    ("GET", "/collections/{collection_id}/{export}"): "see_collection",
    ("GET", "/doi/{prefix}/{suffix:path}"): "doi_landing",
    ("GET", "/api/collections"): "public",  # filtered
    ("GET", "/api/collections/{collection_id}"): "see_collection",
    ("POST", "/api/proposals/{number}/collections"): "edit_collection",
    ("PATCH", "/api/collections/{collection_id}"): "edit_collection",
    ("POST", "/api/collections/{collection_id}/publish"): "edit_collection",
    # --- PaNOSC search API (open data only: what the caller may read)
    ("GET", "/api/panosc/datasets"): "public",
    ("GET", "/api/panosc/datasets/count"): "public",
    ("GET", "/api/panosc/datasets/{dataset_id}"): "read_data",
    ("GET", "/api/panosc/documents"): "public",
    ("GET", "/api/panosc/documents/count"): "public",
    ("GET", "/api/panosc/documents/{document_id}"): "read_data",
    ("GET", "/api/panosc/instruments"): "public",
    ("GET", "/api/panosc/instruments/count"): "public",
    ("GET", "/api/panosc/instruments/{instrument_id}"): "public",
    # --- notebooks
    ("GET", "/jupyter"): "signed_in",
    ("GET", "/jupyter/confirm"): "signed_in",  # a bad ticket: 400, only for the asking browser
    ("POST", "/proposals/{number}/notebook"): "read_data_signed_in",
    ("POST", "/jobs/{job_id}/notebook"): "view_job",
    # --- XRF workbench: computations on data the caller may read
    ("GET", "/proposals/{number}/workbench"): "read_data",
    ("GET", "/api/proposals/{number}/xrf/config"): "read_data",
    ("GET", "/api/proposals/{number}/xrf/configs"): "read_data",
    ("GET", "/api/proposals/{number}/xrf/result"): "read_data",
    ("GET", "/api/proposals/{number}/xrf/spectra"): "read_data",
    ("POST", "/api/proposals/{number}/xrf/fit"): "read_data",
    ("POST", "/api/proposals/{number}/xrf/spectrum"): "read_data",
    ("POST", "/api/proposals/{number}/xrf/roi"): "read_data",
    ("POST", "/api/proposals/{number}/xrf/rgb"): "read_data",
    ("POST", "/api/proposals/{number}/xrf/config/save"): "run_job",  # writes into processed/
    ("GET", "/api/xrf/elements"): "signed_in",
    ("GET", "/api/xrf/identify"): "signed_in",
    # --- analysis jobs
    ("GET", "/api/proposals/{number}/jobs"): "run_job",
    ("POST", "/api/proposals/{number}/jobs"): "run_job",
    ("GET", "/api/jobs/{job_id}"): "view_job",
    ("DELETE", "/api/jobs/{job_id}"): "cancel_job",
    ("GET", "/api/jobs/{job_id}/events"): "view_job",
    ("GET", "/proposals/{number}/jobs"): "run_job",
    ("POST", "/proposals/{number}/jobs"): "run_job",
    ("POST", "/proposals/{number}/jobs/{job_id}/cancel"): "cancel_job",
}


def rule_is_known(rule: str) -> bool:
    return rule in (ANY, NOBODY) or rule in GLOBAL_RULES or rule in PROPOSAL_RULES
