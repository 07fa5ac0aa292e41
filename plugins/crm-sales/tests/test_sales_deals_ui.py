"""The deal pages through the test client: the board and its move forms, the list, the
deal's page, the forms, the customer page's panel and tab, the dashboard widget and the
timeline, with denials, conflicts and bounded queries."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal
from typing import Any

import pytest
from crm_sales.models import LostReason, Opportunity, Pipeline, Stage, StageStay
from crm_sales.parts.deals import board as board_part
from crm_sales.parts.deals import listing as listing_part
from crm_sales.services import opportunities
from sqlalchemy import func, select, update

from crm_core.models import Team
from crm_core.services import contacts, customers
from crm_core.testing import UiBrowser, link_of, sql_statements, ui_user
from crm_core.timeline import timeline

SAM = "sam@sales.example"


@pytest.fixture
def sam(crm: Any) -> Any:
    """A salesperson with every permission, seeing every record, who signs in."""
    return ui_user(crm, SAM)


@pytest.fixture
def browser(client: Any, sam: Any) -> UiBrowser:
    """Sam, signed in."""
    return UiBrowser(client, SAM)


def _stage(crm: Any, name: str, pipeline: str = "New business") -> Stage:
    with crm.session_factory() as session:
        return session.scalars(
            select(Stage).join(Pipeline).where(Stage.name == name, Pipeline.name == pipeline)
        ).one()


def _deal(crm: Any, user: Any, customer: Any, name: str, **data: Any) -> Opportunity:
    with crm.unit_of_work(actor=user, source="test") as uow:
        return opportunities.create(uow, {"name": name, "customer_id": customer.id, **data})


def _move(crm: Any, user: Any, deal: Any, stage: str) -> None:
    with crm.unit_of_work(actor=user, source="test") as uow:
        opportunities.move(uow, deal.id, {"stage_id": _stage(crm, stage).id})


def _stored(crm: Any, deal_id: int) -> Opportunity:
    with crm.session_factory() as session:
        found = session.get(Opportunity, deal_id)
        assert found is not None
        session.expunge(found)
        return found


def _text(page: str) -> str:
    """The page's text without tags, with single spaces."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _column(page: str, stage: Stage) -> str:
    """The board's column of ``stage`` (its markup)."""
    found = re.search(rf'<section class="board-column[^"]*" id="stage-{stage.id}".*?</section>',
                      page, re.S)
    assert found, f"no column for {stage.name}"
    return found.group(0)


def _field_errors(page: str, name: str) -> str:
    found = re.search(rf'<ul class="field-errors" id="{re.escape(name)}-errors">(.*?)</ul>', page)
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))) if found else ""


@pytest.fixture
def renewals(crm: Any) -> Pipeline:
    """A second pipeline (sales admins make them; here straight into the tables)."""
    with crm.session_factory() as session, session.begin():
        pipeline = Pipeline(name="Renewals", position=1, stages=[
            Stage(name="Due", position=0, probability=60, outcome="open"),
            Stage(name="Renewed", position=1, probability=100, outcome="won"),
            Stage(name="Churned", position=2, probability=0, outcome="lost"),
        ])
        session.add(pipeline)
    return pipeline


# -- the board ----------------------------------------------------------------------------------


def test_the_board_shows_a_column_per_stage_with_the_deals_as_cards(crm, sam, browser, acme):
    _deal(crm, sam, acme, "Tools 2027", amount="12000.50", expected_close="2027-03-01")
    _deal(crm, sam, acme, "Spare parts", amount="500")
    moved = _deal(crm, sam, acme, "Service contract", amount="3000", currency="USD")
    _move(crm, sam, moved, "Proposal")
    won = _deal(crm, sam, acme, "Won recently", amount="700")
    _move(crm, sam, won, "Won")
    old = _deal(crm, sam, acme, "Won long ago", amount="900")
    _move(crm, sam, old, "Won")
    archived = _deal(crm, sam, acme, "Archived one")
    with crm.unit_of_work(actor=sam, source="test") as uow:
        opportunities.archive(uow, archived.id)
        uow.session.execute(update(Opportunity).where(Opportunity.id == old.id).values(
            closed_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=45)))

    page = browser.get("/sales/board")
    names = re.findall(r'<h2 id="stage-\d+-title"><span>([^<]+)</span>', page)
    assert names == ["Qualification", "Needs analysis", "Proposal", "Negotiation", "Won", "Lost"]
    first = _text(_column(page, _stage(crm, "Qualification")))
    assert "2 deals" in first and "12,500.50 EUR" in first
    assert "Tools 2027" in first and "ACME Tools GmbH" in first and "12,000.50 EUR" in first
    assert "closes Mar 1, 2027" in first and "sam" in first
    assert first.index("Tools 2027") < first.index("Spare parts")  # next closing first
    proposal = _text(_column(page, _stage(crm, "Proposal")))
    assert "1 deal" in proposal and "3,000.00 USD" in proposal and "Service contract" in proposal
    closed = _text(_column(page, _stage(crm, "Won")))
    assert "Won recently" in closed and "Won long ago" not in closed and "1 deal" in closed
    assert "Archived one" not in page
    card = re.search(rf'<li class="deal-card" id="deal-{moved.id}">.*?</li>', page, re.S)
    assert card and f'href="/sales/deals/{moved.id}"' in card.group(0)
    assert f'<option value="{_stage(crm, "Negotiation").id}" selected>' in card.group(0)


def test_a_full_column_says_how_many_more_there_are(crm, sam, browser, acme, monkeypatch):
    monkeypatch.setattr(board_part, "BOARD_CARDS", 2)
    for number in range(5):
        _deal(crm, sam, acme, f"Deal {number}", expected_close=f"2027-01-0{number + 1}")
    column = _text(_column(browser.get("/sales/board"), _stage(crm, "Qualification")))
    assert "5 deals" in column and "Deal 0" in column and "Deal 1" in column
    assert "Deal 2" not in column and "and 3 more" in column


def test_the_board_switches_pipelines_and_refuses_unknown_ones(crm, sam, browser, acme, renewals):
    _deal(crm, sam, acme, "Renewal 2027", pipeline_id=renewals.id)
    page = browser.get(f"/sales/board?pipeline={renewals.id}")
    assert "Pipeline Renewals" in page and "Renewal 2027" in page and "Qualification" not in page
    assert "Renewal 2027" not in browser.get("/sales/board")  # the default pipeline
    browser.get("/sales/board?pipeline=99999", status=404)
    browser.get("/sales/board?pipeline=abc", status=400)


def test_the_board_and_list_read_a_constant_number_of_queries(crm, sam, browser, acme):
    def statements(path: str) -> int:
        with sql_statements(crm) as seen:
            browser.get(path)
        return len(seen)

    _deal(crm, sam, acme, "First")
    few = statements("/sales/board"), statements("/sales/deals")
    for number in range(12):
        deal = _deal(crm, sam, acme, f"More {number}", amount=str(number))
        if number % 3 == 0:
            _move(crm, sam, deal, "Negotiation")
    assert (statements("/sales/board"), statements("/sales/deals")) == few


# -- moving -------------------------------------------------------------------------------------


def test_moving_a_card_changes_the_stage_and_the_history(crm, sam, browser, acme):
    deal = _deal(crm, sam, acme, "Tools 2027")
    proposal = _stage(crm, "Proposal")
    response = browser.post(f"/sales/deals/{deal.id}/move",
                            {"stage_id": proposal.id, "version": 1, "back": "board"})
    assert response.headers["Location"].endswith(f"/sales/board?pipeline=1#deal-{deal.id}")
    assert _stored(crm, deal.id).stage_id == proposal.id
    board = browser.get("/sales/board")
    assert "Tools 2027 moved to Proposal." in _text(board)
    assert "Tools 2027" in _column(board, proposal)
    with crm.session_factory() as session:
        stays = session.execute(select(StageStay.stage_id, StageStay.left_at, StageStay.moved_by)
                                .where(StageStay.opportunity_id == deal.id)
                                .order_by(StageStay.id)).all()
    assert [s.stage_id for s in stays] == [_stage(crm, "Qualification").id, proposal.id]
    assert stays[0].left_at is not None and stays[1].moved_by == sam.id
    # The deal page's Move: the next stage preselected; back to the deal afterwards.
    page = browser.get(f"/sales/deals/{deal.id}/move")
    negotiation = _stage(crm, "Negotiation")
    assert "It is in Proposal now." in page and ">Price</option>" in page  # lost reasons
    assert f'<option value="{negotiation.id}" selected>Negotiation</option>' in page
    response = browser.post(f"/sales/deals/{deal.id}/move",
                            {"stage_id": negotiation.id, "version": 2, "back": "deal",
                             "lost_reason_id": ""})
    assert response.headers["Location"].endswith(f"/sales/deals/{deal.id}")
    assert _stored(crm, deal.id).stage_id == negotiation.id


def test_moving_to_a_lost_stage_asks_why_first(crm, sam, browser, acme):
    deal = _deal(crm, sam, acme, "Long shot")
    lost = _stage(crm, "Lost")
    page = browser.post(f"/sales/deals/{deal.id}/move",
                        {"stage_id": lost.id, "version": 1, "back": "board"}, status=200)
    assert "Why was the deal lost?" in page.get_data(as_text=True)
    assert _stored(crm, deal.id).status == "open"  # not yet
    with crm.session_factory() as session:
        reason = session.scalars(select(LostReason).order_by(LostReason.id)).first()
    browser.post(f"/sales/deals/{deal.id}/move", {"stage_id": lost.id, "version": 1,
                                                  "back": "board", "lost_reason_id": reason.id})
    stored = _stored(crm, deal.id)
    assert stored.status == "lost" and stored.lost_reason_id == reason.id
    page = browser.get(f"/sales/deals/{deal.id}")
    assert f"Lost reason {reason.name}" in _text(page)


def test_a_stage_of_another_pipeline_is_refused(crm, sam, browser, acme, renewals):
    deal = _deal(crm, sam, acme, "Tools 2027")
    other = renewals.stages[0]
    page = browser.post(f"/sales/deals/{deal.id}/move",
                        {"stage_id": other.id, "version": 1, "back": "board"}, status=422)
    text = page.get_data(as_text=True)
    assert "Choose a stage of the deal&#39;s pipeline." in text or \
        "Choose a stage of the deal's pipeline." in _field_errors(text, "stage_id")
    assert _field_errors(text, "stage_id")
    browser.post(f"/sales/deals/{deal.id}/move", {"stage_id": "x", "version": 1}, status=422)
    stored = _stored(crm, deal.id)
    assert stored.stage_id == _stage(crm, "Qualification").id and stored.version == 1


def test_a_move_on_a_stale_version_is_a_conflict(crm, sam, browser, acme):
    deal = _deal(crm, sam, acme, "Contested")
    _move(crm, sam, deal, "Needs analysis")  # someone else, meanwhile: version 2
    negotiation = _stage(crm, "Negotiation")
    response = browser.post(f"/sales/deals/{deal.id}/move",
                            {"stage_id": negotiation.id, "version": 1, "back": "board"},
                            status=409)
    text = _text(response.get_data(as_text=True))
    assert "someone else moved or changed this deal: it is in Needs analysis now" in text
    assert "Move it to Negotiation anyway" in text
    assert _stored(crm, deal.id).stage_id == _stage(crm, "Needs analysis").id
    browser.post(f"/sales/deals/{deal.id}/move", {"stage_id": negotiation.id, "version": 2})
    assert _stored(crm, deal.id).stage_id == negotiation.id
    browser.post(f"/sales/deals/{deal.id}/move", {"stage_id": negotiation.id}, status=400)


def test_moving_needs_the_edit_permission(crm, app, client, sam, acme):
    deal = _deal(crm, sam, acme, "Look, don't touch")
    ui_user(crm, "viewer@sales.example", ["sales.deal.view", "customer.view"])
    viewer = UiBrowser(client, "viewer@sales.example")
    board = viewer.get("/sales/board")
    assert "Look, don&#39;t touch" in board and "/move" not in board and "New deal" not in board
    viewer.post(f"/sales/deals/{deal.id}/move", {"stage_id": _stage(crm, "Won").id,
                                                 "version": 1}, status=403)
    viewer.get(f"/sales/deals/{deal.id}/move", status=403)
    viewer.get("/sales/deals/new", status=403)
    viewer.get(f"/sales/deals/{deal.id}/edit", status=403)
    viewer.post(f"/sales/deals/{deal.id}/archive", {"version": 1}, status=403)
    assert "sales.deal.edit" in _text(viewer.get(f"/sales/deals/{deal.id}/edit", status=403))
    assert _stored(crm, deal.id).status == "open"
    ui_user(crm, "nobody@sales.example", ["customer.view"])
    nobody = UiBrowser(app.test_client(), "nobody@sales.example")
    nobody.get("/sales/board", status=403)
    nobody.get("/sales/deals", status=403)
    assert 'href="/sales/board"' not in nobody.get("/")


def test_deals_of_owners_one_may_not_see_are_not_found(crm, client, seller):
    loner = ui_user(crm, "own@sales.example", None, visibility="own")
    with crm.unit_of_work(actor=loner, source="test") as uow:
        shared = customers.create(uow, {"name": "Shared GmbH", "owner_id": loner.id})
    theirs = _deal(crm, seller, shared, "Seller's secret")
    mine = _deal(crm, loner, shared, "My own")
    own = UiBrowser(client, "own@sales.example")
    board = own.get("/sales/board")
    assert "My own" in board and "Seller" not in board
    own.get(f"/sales/deals/{theirs.id}", status=404)
    own.get(f"/sales/deals/{theirs.id}/edit", status=404)
    own.get(f"/sales/deals/{theirs.id}/move", status=404)
    own.post(f"/sales/deals/{theirs.id}/move", {"stage_id": _stage(crm, "Won").id,
                                                "version": 1}, status=404)
    own.post(f"/sales/deals/{theirs.id}/archive", {"version": 1}, status=404)
    assert "There is no opportunity" in own.get(f"/sales/deals/{theirs.id}", status=404)
    assert "Seller" not in own.get("/sales/deals")
    own.get(f"/sales/deals/{mine.id}")
    assert _stored(crm, theirs.id).status == "open"


def test_a_team_sees_its_members_deals_on_every_page(crm, client, seller):
    with crm.session_factory() as session, session.begin():
        team = Team(name="North")
        session.add(team)
    lead = ui_user(crm, "lead@sales.example", None, visibility="team", team=team)
    mate = ui_user(crm, "mate@sales.example", None, visibility="own", team=team)
    with crm.unit_of_work(actor=seller, source="test") as uow:
        north = customers.create(uow, {"name": "North AB", "owner_id": mate.id})
    ours = _deal(crm, mate, north, "Team deal", expected_close="2027-01-01")
    _move(crm, mate, ours, "Proposal")
    _deal(crm, seller, north, "Outsider deal")
    browser = UiBrowser(client, "lead@sales.example")
    for path in ("/sales/board", "/sales/deals", f"/customers/{north.id}",
                 f"/customers/{north.id}?tab=deals"):
        page = browser.get(path)
        assert "Team deal" in page and "Outsider deal" not in page, path
    assert lead.team_id == team.id
    browser.get(f"/sales/deals/{ours.id}")
    assert "You have no open deals." in browser.get("/")


def test_archiving_hides_the_deal_and_restoring_brings_it_back(crm, sam, browser, acme):
    deal = _deal(crm, sam, acme, "Dormant")
    browser.post(f"/sales/deals/{deal.id}/archive", {"version": 1})
    assert _stored(crm, deal.id).archived
    assert f'id="deal-{deal.id}"' not in browser.get("/sales/board")
    assert "Dormant" not in browser.get("/sales/board")  # the notice was shown once
    page = browser.get(f"/sales/deals/{deal.id}")
    assert "archived" in page and "Restore" in page
    browser.post(f"/sales/deals/{deal.id}/restore", {"version": 1}, status=409)
    browser.post(f"/sales/deals/{deal.id}/restore", {"version": 2})
    assert not _stored(crm, deal.id).archived


# -- the list -----------------------------------------------------------------------------------


def test_the_list_filters_by_name_status_owner_and_pipeline(crm, seller, sam, browser, acme,
                                                              renewals):
    _deal(crm, sam, acme, "Tools 2027")
    theirs = _deal(crm, seller, acme, "Tools for Berlin")
    won = _deal(crm, sam, acme, "Spare parts")
    _move(crm, sam, won, "Won")
    _deal(crm, sam, acme, "Renewal 100%_", pipeline_id=renewals.id)

    def names(query: str) -> list[str]:
        page = browser.get("/sales/deals" + query)
        return re.findall(r'<th scope="row"><a href="/sales/deals/\d+">([^<]+)</a>', page)

    assert sorted(names("")) == ["Renewal 100%_", "Spare parts", "Tools 2027", "Tools for Berlin"]
    assert sorted(names("?q=tools")) == ["Tools 2027", "Tools for Berlin"]
    assert names("?q=100%25_") == ["Renewal 100%_"] and names("?q=%25") == ["Renewal 100%_"]
    assert names("?status=won") == ["Spare parts"]
    assert sorted(names("?status=open&owner=me&q=tools")) == ["Tools 2027"]
    assert names(f"?pipeline={renewals.id}") == ["Renewal 100%_"]
    assert names(f"?customer_id={acme.id}&owner=me&status=won") == ["Spare parts"]
    assert names(f"?stage={_stage(crm, 'Qualification').id}&owner=me") == ["Tools 2027"]
    assert "No deals match these filters." in browser.get("/sales/deals?q=nothing-like-it")
    assert theirs.owner_id == seller.id
    for bad in ("?status=maybe", "?owner=you", "?pipeline=x", "?cursor=nonsense"):
        browser.get("/sales/deals" + bad, status=400)


def test_the_list_pages_by_expected_close_then_id(crm, sam, browser, acme, monkeypatch):
    monkeypatch.setattr(listing_part, "PAGE_SIZE", 3)
    closes = ["2027-05-01", None, "2027-01-15", "2027-05-01", None, "2026-12-31", "2027-05-01"]
    made = [_deal(crm, sam, acme, f"Deal {n}", expected_close=day)
            for n, day in enumerate(closes)]
    expected = [deal.name for deal in sorted(
        made, key=lambda d: (d.expected_close is None, d.expected_close or dt.date.min, d.id))]
    seen: list[str] = []
    url: str | None = "/sales/deals"
    while url:
        page = browser.get(url)
        seen += re.findall(r'<th scope="row"><a href="/sales/deals/\d+">([^<]+)</a>', page)
        url = link_of(page) if 'rel="next"' in page else None
        if url:
            assert "First page" in browser.get(url)
    assert seen == expected


# -- the deal's page ----------------------------------------------------------------------------


def test_the_deal_page_shows_details_contacts_lines_and_history(crm, sam, browser, acme):
    with crm.unit_of_work(actor=sam, source="test") as uow:
        anna = contacts.create(uow, {"first_name": "Anna", "last_name": "Berg",
                                     "customer_id": acme.id})
    deal = _deal(crm, sam, acme, "Tools 2027", amount="10000", probability=35,
                 expected_close="2027-02-01", source="trade fair", next_step="Send the offer",
                 contacts=[{"contact_id": anna.id, "role": "decision_maker"}],
                 lines=[{"description": "Licences", "quantity": "10", "unit_price": "1000",
                         "discount_percent": "5"},
                        {"description": "Training", "quantity": "2", "unit_price": "250"}])
    _move(crm, sam, deal, "Proposal")
    text = _text(browser.get(f"/sales/deals/{deal.id}"))
    assert "Tools 2027" in text and "Proposal in New business" in text
    assert "Customer ACME Tools GmbH" in text and "Amount 10,000.00 EUR" in text
    assert "Probability 35% (the stage's default: 50%)" in text
    assert "Weighted amount 3,500.00 EUR" in text and "Expected close Feb 1, 2027" in text
    assert "Source trade fair" in text and "Next step Send the offer" in text
    assert "Owner sam" in text and "Status Open" in text
    assert "Anna Berg · Decision maker" in text
    assert "Licences 10 1,000.00 EUR 5% 9,500.00 EUR" in text
    assert "Total of the lines 10,000.00 EUR" in text
    history = text[text.index("Stage history"):]
    assert re.search(r"Qualification .+ \d+ minutes? sam Proposal .+ still here \d+ minutes? sam",
                     history)
    page = browser.get(f"/sales/deals/{deal.id}")
    for link in (f"/sales/deals/{deal.id}/edit", f"/sales/deals/{deal.id}/move",
                 f"/sales/deals/{deal.id}/archive", f"/customers/{acme.id}",
                 f"/contacts/{anna.id}"):
        assert f'href="{link}"' in page or f'action="{link}"' in page
    _move(crm, sam, deal, "Lost")
    assert "Lost reason None given" in _text(browser.get(f"/sales/deals/{deal.id}"))
    browser.get("/sales/deals/999999", status=404)


def test_the_deal_page_without_an_override_shows_the_stage_default(crm, sam, browser, acme):
    deal = _deal(crm, sam, acme, "Plain", amount="200")
    text = _text(browser.get(f"/sales/deals/{deal.id}"))
    assert "Probability 10% (the stage's default)" in text
    assert "Weighted amount 20.00 EUR" in text and "No lines yet." in text


# -- the forms ----------------------------------------------------------------------------------


def _count(crm: Any) -> int:
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).select_from(Opportunity)) or 0


def test_a_deal_is_created_through_the_form(crm, sam, browser, acme):
    with crm.unit_of_work(actor=sam, source="test") as uow:
        anna = contacts.create(uow, {"first_name": "Anna", "last_name": "Berg",
                                     "customer_id": acme.id})
    page = browser.get(f"/sales/deals/new?customer_id={acme.id}")
    assert f'value="{acme.id}"' in page and "Now: ACME Tools GmbH" in page
    assert f'<option value="{anna.id}">Anna Berg</option>' in page
    response = browser.post("/sales/deals/new", {
        "name": "Tools 2027", "customer_id": str(acme.id), "pipeline_id": "1",
        "stage_id": str(_stage(crm, "Needs analysis").id), "amount": "12000.50",
        "currency": "eur", "expected_close": "2027-03-01", "probability": "",
        "owner_id": str(sam.id), "source": "web", "next_step": "Call", "committed": "1",
        "contacts-0-contact_id": "", "contacts-0-role": "other",
        "contacts-1-contact_id": str(anna.id), "contacts-1-role": "champion",
        "lines-0-description": "", "lines-0-quantity": "",
        "lines-1-description": "Licences", "lines-1-quantity": "3",
        "lines-1-unit_price": "100", "lines-1-discount_percent": "10",
    })
    deal_id = int(response.headers["Location"].rsplit("/", 1)[1])
    deal = _stored(crm, deal_id)
    assert (deal.name, deal.amount, deal.currency, deal.committed) == (
        "Tools 2027", Decimal("12000.50"), "EUR", True)
    assert deal.stage.name == "Needs analysis" and deal.probability is None
    assert [(c.contact_id, c.role) for c in deal.contacts] == [(anna.id, "champion")]
    assert [(line.description, line.total) for line in deal.lines] == [
        ("Licences", Decimal("270.00"))]
    assert "Tools 2027 was created." in _text(browser.get(f"/sales/deals/{deal_id}"))


def test_bad_input_is_shown_beside_each_field_and_nothing_is_saved(crm, sam, browser, acme,
                                                                     renewals):
    before = _count(crm)
    form = {
        "name": "", "customer_id": str(acme.id), "pipeline_id": "1", "stage_id": "",
        "amount": "-5", "currency": "euro", "expected_close": "soon", "probability": "150",
        "owner_id": str(sam.id), "source": "x" * 81, "next_step": "",
        "contacts-0-contact_id": "abc", "contacts-0-role": "boss",
        "lines-0-description": "Licences", "lines-0-quantity": "many",
        "lines-0-unit_price": "-1", "lines-0-discount_percent": "120",
    }
    page = browser.post("/sales/deals/new", form, status=422).get_data(as_text=True)
    expected = {
        "name": "Must not be empty.",
        "amount": "Must not be negative.",
        "currency": "Use a three-letter ISO currency code, e.g. EUR.",
        "expected_close": "Not a valid date.",
        "probability": "Use a number from 0 to 100.",
        "source": "Longer than maximum length 80.",
        "contacts-0-contact_id": "Not a valid integer.",
        "contacts-0-role": "Must be one of",
        "lines-0-quantity": "Not a valid number.",
        "lines-0-unit_price": "Must not be negative.",
        "lines-0-discount_percent": "Use a number from 0 to 100.",
    }
    for name, message in expected.items():
        assert message in _field_errors(page, name), (name, _field_errors(page, name))
        assert f'id="{name}"' in page
    assert 'value="Licences"' in page and "Please correct the fields" in page
    # What the schema accepts but points nowhere: a customer, a contact, a stage elsewhere.
    form.update(name="Tools", amount="5", currency="EUR", expected_close="", probability="",
                source="", customer_id="999999", **{
                    "contacts-0-contact_id": "999999", "contacts-0-role": "other",
                    "lines-0-quantity": "1", "lines-0-unit_price": "1",
                    "lines-0-discount_percent": "0"})
    page = browser.post("/sales/deals/new", form, status=422).get_data(as_text=True)
    assert "No such customer." in _field_errors(page, "customer_id")
    assert "No such contact." in _field_errors(page, "contacts-0-contact_id")
    form.update(customer_id=str(acme.id), stage_id=str(renewals.stages[0].id))
    page = browser.post("/sales/deals/new", form, status=422).get_data(as_text=True)
    assert "Choose a stage of the deal's pipeline." in _field_errors(page, "stage_id")
    form.update(customer_id="", stage_id="")
    page = browser.post("/sales/deals/new", form, status=422).get_data(as_text=True)
    assert "Give the customer's number." in _field_errors(page, "customer_id")
    form.update(customer_id="99999999999")
    page = browser.post("/sales/deals/new", form, status=422).get_data(as_text=True)
    assert "Must be from" in _field_errors(page, "customer_id")
    assert _count(crm) == before


def test_editing_keeps_rows_and_a_stale_version_shows_both_sides(crm, sam, browser, acme):
    deal = _deal(crm, sam, acme, "Tools 2027", amount="100",
                 lines=[{"description": "Licences", "quantity": "2", "unit_price": "50"}])
    page = browser.get(f"/sales/deals/{deal.id}/edit")
    assert 'value="Licences"' in page and 'value="100.00"' in page and 'name="version"' in page
    form = {
        "version": "1", "name": "Tools 2027", "customer_id": str(acme.id), "pipeline_id": "1",
        "stage_id": str(deal.stage_id), "amount": "150", "currency": "EUR",
        "expected_close": "", "probability": "", "owner_id": str(sam.id), "source": "",
        "next_step": "", "lines-0-description": "Licences", "lines-0-quantity": "3",
        "lines-0-unit_price": "50", "lines-0-discount_percent": "0",
    }
    with crm.unit_of_work(actor=sam, source="test") as uow:  # someone else saves first
        opportunities.update(uow, deal.id, {"amount": "120"})
    response = browser.post(f"/sales/deals/{deal.id}/edit", form, status=409)
    text = _text(response.get_data(as_text=True))
    assert "Someone else saved Tools 2027 while you were editing" in text
    assert "Amount 120.00 150" in text and "Lines" in text
    assert _stored(crm, deal.id).amount == Decimal("120")
    browser.post(f"/sales/deals/{deal.id}/edit", {**form, "version": "2"})
    stored = _stored(crm, deal.id)
    assert stored.amount == Decimal("150") and stored.lines[0].quantity == Decimal(3)
    bad = browser.post(f"/sales/deals/{deal.id}/edit",
                       {**form, "version": "3", "name": " "}, status=422)
    assert _field_errors(bad.get_data(as_text=True), "name")
    assert _stored(crm, deal.id).name == "Tools 2027"


# -- the customer page, the dashboard, the timeline ---------------------------------------------


def test_the_customer_page_shows_open_deals_and_a_deals_tab(crm, sam, browser, acme):
    first = _deal(crm, sam, acme, "Tools 2027", amount="1000", expected_close="2027-01-01")
    _deal(crm, sam, acme, "Spare parts", amount="200", probability=50)
    won = _deal(crm, sam, acme, "Done deal", amount="999")
    _move(crm, sam, won, "Won")
    page = browser.get(f"/customers/{acme.id}")
    panel = re.search(r'<section class="card panel-sales-open-deals".*?</section>', page, re.S)
    assert panel, "no open deals panel"
    text = _text(panel.group(0))
    assert "Open deals" in text and "Tools 2027" in text and "Spare parts" in text
    assert "Done deal" not in text and "2 open deals, weighted: 200.00 EUR" in text
    assert f'href="/sales/deals/new?customer_id={acme.id}"' in panel.group(0)
    assert text.index("Tools 2027") < text.index("Spare parts")
    assert re.search(r'tab=deals"[^>]*>Deals <span class="count">3</span>', page)
    tab = browser.get(f"/customers/{acme.id}?tab=deals")
    listed = re.findall(r'<a href="/sales/deals/(\d+)">', tab)
    assert str(first.id) in listed and str(won.id) in listed
    assert "Done deal" in tab and "Won" in tab


def test_the_dashboard_shows_my_open_deals(crm, seller, sam, browser, acme):
    _deal(crm, sam, acme, "Mine soon", amount="100", expected_close="2027-01-01")
    _deal(crm, sam, acme, "Mine later", amount="50", currency="USD")
    _deal(crm, seller, acme, "Not mine")
    page = browser.get("/")
    widget = re.search(r'<section class="card widget-sales-my-deals".*?</section>', page, re.S)
    assert widget, "no widget"
    text = _text(widget.group(0))
    assert "My open deals" in text and "Mine soon" in text and "Not mine" not in text
    assert "2 open deals, in all: 100.00 EUR · 50.00 USD" in text
    assert 'href="/sales/board"' in page  # the navigation's Deals


def test_the_timeline_shows_stage_changes(crm, seller, sam, browser, acme):
    deal = _deal(crm, sam, acme, "Tools 2027")
    _move(crm, sam, deal, "Proposal")
    _move(crm, sam, deal, "Won")
    text = _text(browser.get(f"/customers/{acme.id}"))
    assert "Tools 2027 moved from Proposal to Won" in text
    assert "Tools 2027 moved from Qualification to Proposal" in text
    assert "Tools 2027 started in Qualification" in text and "by sam" in text
    assert text.index("to Won") < text.index("to Proposal")
    with crm.session_factory() as session:
        everything = timeline(crm, session, sam, acme.id, limit=50).entries
        assert [e.title for e in everything] == [
            "Tools 2027 moved from Proposal to Won",
            "Tools 2027 moved from Qualification to Proposal",
            "Tools 2027 started in Qualification"]
        assert everything[0].url == f"/sales/deals/{deal.id}"
        paged, page = [], timeline(crm, session, sam, acme.id, limit=1)
        while True:
            paged += page.entries
            if page.next_cursor is None:
                break
            page = timeline(crm, session, sam, acme.id, limit=1, before=page.next_cursor)
        assert [e.id for e in paged] == [e.id for e in everything]
        assert not timeline(crm, session, sam, acme.id, types={"interaction"}).entries
        assert not timeline(crm, session, sam, acme.id, channels={"call"}).entries
        viewer = ui_user(crm, "viewer@sales.example", ["customer.view"])
        assert not timeline(crm, session, viewer, acme.id).entries


def test_a_salesperson_seeing_only_their_own_deals_sees_only_their_moves(crm, seller, acme):
    with crm.unit_of_work(actor=seller, source="test") as uow:
        customers.update(uow, acme.id, {"owner_id": None})
    _deal(crm, seller, acme, "Seller's deal")
    own = ui_user(crm, "own@sales.example", None, visibility="own")
    with crm.unit_of_work(actor=seller, source="test") as uow:
        customers.update(uow, acme.id, {"owner_id": own.id})
    _deal(crm, own, acme, "Own deal")
    with crm.session_factory() as session:
        titles = [e.title for e in timeline(crm, session, own, acme.id).entries]
    assert titles == ["Own deal started in Qualification"]
