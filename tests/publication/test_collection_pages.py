"""The collection pages and forms: create, edit, publish; drafts stay private."""

from __future__ import annotations

from tests.publication.conftest import Facility, auth


def test_pi_creates_edits_and_publishes_through_the_forms(
    pinned_app, client, facility: Facility
) -> None:  # type: ignore[no-untyped-def]
    pi = auth(facility, "pi")
    form = client.get("/proposals/20260001/collections/new", headers=pi)
    assert form.status_code == 200
    assert "Chadwick, James; 0000-0002-1825-0097; University of Cambridge" in form.text
    assert (
        client.get(
            "/proposals/20260001/collections/new", headers=auth(facility, "participant")
        ).status_code
        == 403
    )
    ids = [str(i) for k, i in facility.dataset_ids.items() if k.startswith("20260001/raw/")]
    r = client.post(
        "/proposals/20260001/collections/new",
        headers=pi,
        follow_redirects=False,
        data={
            "title": "Bronze scans",
            "abstract": "Two scans.",
            "creators": "Chadwick, James; 0000-0002-1825-0097; Cambridge\nMeitner, Lise",
            "keywords": "bronze, copper",
            "techniques": "X-ray fluorescence",
            "instrument": "XRF",
            "licence": "CC0-1.0",
            "related_dois": "10.1000/paper.1",
            "dataset_ids": ids,
        },
    )
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    cid = int(url.rsplit("/", 1)[1])
    made = client.get(f"/api/collections/{cid}", headers=pi).json()
    assert made["licence"] == "CC0-1.0" and made["keywords"] == ["bronze", "copper"]
    assert [c["family_name"] for c in made["creators"]] == ["Chadwick", "Meitner"]
    assert len(made["datasets"]) == 2
    # A draft: the public sees neither the page nor the list entry; members do.
    assert client.get(url).status_code == 404
    assert "Bronze scans" not in client.get("/proposals/20260001/collections").text
    assert (
        "Bronze scans"
        in client.get("/proposals/20260001/collections", headers=auth(facility, "participant")).text
    )
    # Bad input comes back as the form with the message, nothing saved.
    r = client.post(
        f"/collections/{cid}/edit",
        headers=pi,
        data={"title": "", "creators": "X", "dataset_ids": ids},
    )
    assert r.status_code == 200 and "needs a title" in r.text
    r = client.post(
        f"/collections/{cid}/edit",
        headers=pi,
        follow_redirects=False,
        data={
            "title": "Bronze scans, final",
            "creators": "Chadwick, James",
            "licence": "CC-BY-4.0",
            "dataset_ids": ids[:1],
        },
    )
    assert r.status_code == 303
    r = client.post(f"/collections/{cid}/publish", headers=pi, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(url)
    assert page.status_code == 200 and "Bronze scans, final" in page.text
    assert "10.5072/elettra.20260001." in page.text  # the draft-only default
    assert "Bronze scans, final" in client.get("/catalogue").text
    assert (
        client.get(f"/collections/{cid}/edit", headers=auth(facility, "outsider")).status_code
        == 403
    )
