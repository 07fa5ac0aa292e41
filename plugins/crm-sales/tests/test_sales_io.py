"""Deals in and out of files: ``crm export opportunities``, the export page, and core's
import of ``opportunities`` (``crm import opportunities``, ``POST /api/v1/imports``, the
``/imports`` page): dry run, for real, refused rows by line, visibility."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crm_sales.models import Opportunity, Stage, StageStay
from crm_sales.parts import deals_io
from crm_sales.services import opportunities
from sqlalchemy import func, select

from crm_core.models import AuditEntry, ImportJob
from crm_core.services import customers
from crm_core.testing import (
    ApiClient,
    UiBrowser,
    api_token,
    make_user,
    plugin_module,
    sql_statements,
    ui_user,
)

HEADER = [
    "id", "name", "customer_id", "customer", "pipeline_id", "pipeline", "stage_id", "stage",
    "status", "owner_id", "owner_email", "amount", "currency", "expected_close", "probability",
    "effective_probability", "committed", "source", "next_step", "lost_reason_id",
    "lost_reason", "stage_entered_at", "closed_at", "archived", "version", "created_at",
    "updated_at",
]


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def deals(crm: Any) -> list[Opportunity]:
    with crm.session_factory() as session:
        return list(session.scalars(select(Opportunity).order_by(Opportunity.id)))


def stage_id(crm: Any, name: str) -> int:
    with crm.session_factory() as session:
        return session.scalars(select(Stage.id).where(Stage.name == name)).one()


@pytest.fixture
def rep(crm: Any) -> Any:
    """A sales rep who sees their own deals and customers only."""
    return ui_user(crm, "rep@sales.example", ["sales.deal.view", "sales.deal.edit",
                                              "customer.view"], visibility="own")


@pytest.fixture
def book(crm: Any, seller: Any, rep: Any, acme: Any) -> dict[str, Any]:
    """A deal of the seller's in Proposal, a rep's deal of the rep's customer, an archived one."""
    with crm.unit_of_work(actor=seller, source="test") as uow:
        own = customers.create(uow, {"name": "Rep's Customer", "owner_id": rep.id})
        big = opportunities.create(uow, {
            "name": "Tools 2027", "customer_id": acme.id, "amount": "1200.50",
            "expected_close": "2027-03-31", "source": "Fair", "next_step": "Call, then mail",
            "stage_id": stage_id(crm, "Proposal"), "probability": 40,
        })
        small = opportunities.create(uow, {"name": "Rep's deal", "customer_id": own.id,
                                           "owner_id": rep.id, "currency": "SEK"})
        old = opportunities.create(uow, {"name": "Old one", "customer_id": acme.id})
        opportunities.archive(uow, old.id)
    return {"big": big, "small": small, "old": old, "own": own}


# -- export -----------------------------------------------------------------------------------


def test_crm_export_opportunities_writes_the_deals_with_names(runner, crm, book, seller):
    result = runner.invoke(args=["export", "opportunities"])
    assert result.exit_code == 0, result.output
    assert "exported 2 opportunities as csv" in result.stderr
    assert result.stdout.splitlines()[0].split(",") == HEADER
    found = rows_of(result.stdout)
    assert [row["name"] for row in found] == ["Tools 2027", "Rep's deal"]
    big = found[0]
    assert big["customer"] == "ACME Tools GmbH" and big["pipeline"] == "New business"
    assert big["stage"] == "Proposal" and big["status"] == "open"
    assert big["owner_email"] == "seller@sales.example" and big["owner_id"] == str(seller.id)
    assert (big["amount"], big["currency"], big["expected_close"]) == ("1200.50", "EUR",
                                                                      "2027-03-31")
    assert (big["probability"], big["effective_probability"]) == ("40", "40")
    assert found[1]["probability"] == "" and found[1]["effective_probability"] == "10"
    assert big["committed"] == "false" and big["next_step"] == "Call, then mail"
    archived = rows_of(runner.invoke(args=["export", "opportunities", "--include-archived"]).stdout)
    assert [row["name"] for row in archived] == ["Tools 2027", "Rep's deal", "Old one"]


def test_the_export_keeps_to_what_the_user_sees(runner, crm, book, rep):
    mine = runner.invoke(args=["export", "opportunities", "--as", rep.email, "--format", "jsonl"])
    assert mine.exit_code == 0, mine.output
    records = [json.loads(line) for line in mine.stdout.splitlines()]
    assert [(r["name"], r["customer"], r["currency"]) for r in records] == [
        ("Rep's deal", "Rep's Customer", "SEK")
    ]
    assert records[0]["amount"] == "0.00" and records[0]["effective_probability"] == 10
    outsider = make_user(crm, "outsider@sales.example", ["customer.view"])
    refused = runner.invoke(args=["export", "opportunities", "--as", outsider.email])
    assert refused.exit_code != 0 and "sales.deal.view" in refused.output


def test_the_export_page_offers_deals_to_those_who_may_see_them(app, crm, book, rep):
    ui_user(crm, "clerk@sales.example", ["customer.view"])
    clerk = UiBrowser(app.test_client(), "clerk@sales.example")
    assert "/exports/opportunities.csv" not in clerk.get("/exports")
    clerk.get("/exports/opportunities.csv", status=403)
    browser = UiBrowser(app.test_client(), rep.email)
    page = browser.get("/exports")
    assert 'formaction="/exports/opportunities.csv">CSV</button>' in page
    assert 'formaction="/exports/opportunities.jsonl">JSON Lines</button>' in page
    assert "Every deal the user may see" in page
    download = browser.get("/exports/opportunities.csv")
    assert [row["name"] for row in rows_of(download)] == ["Rep's deal"]


# -- import -----------------------------------------------------------------------------------


@pytest.fixture
def sheet(tmp_path: Path, seller: Any, acme: Any) -> Path:
    """Six deals: two good (by customer name, by id), four refused for different reasons."""
    path = tmp_path / "deals.csv"
    path.write_text(
        "Deal name;Customer;Customer ID;Pipeline;Stage;Amount;Currency;Close date;Owner;"
        "Probability;Source;Next step;Colour\n"
        f"Tools 2027;ACME Tools GmbH;;New business;Proposal;1200.50;EUR;2027-03-31;"
        f"{seller.email.upper()};40;Fair;Call back;red\n"
        "Negative;ACME Tools GmbH;;;;-5;EUR;;;;;;\n"
        "\n"
        "Nobody's;Nobody Ltd;;;;10;;;;;;;\n"
        f"Nowhere;;{acme.id};New business;Nowhere;10;;;;;;;\n"
        f"Ghost owner;;{acme.id};;;;;;ghost@sales.example;;;;\n"
        f"Minimal;;{acme.id};;;;;;;;;;\n",
        encoding="utf-8",
    )
    return path


def last_job(crm: Any) -> ImportJob:
    with crm.session_factory() as session:
        return session.scalars(select(ImportJob).order_by(ImportJob.id.desc())).first()


def test_a_dry_run_reports_every_refused_row_by_line_and_saves_nothing(runner, crm, sheet):
    result = runner.invoke(args=["import", "opportunities", str(sheet), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert ("dry run, nothing saved: would have created 2, updated 0, skipped 0, rejected 4 "
            "of 6 rows" in result.stdout)
    assert "line 3 Amount '-5': Must not be negative." in result.stdout
    assert "line 5 Customer 'Nobody Ltd': No customer with the name 'Nobody Ltd'." in result.stdout
    assert ("line 6 Stage 'Nowhere': The pipeline 'New business' has no stage 'Nowhere'."
            in result.stdout)
    assert ("line 7 Owner 'ghost@sales.example': No active user with the email "
            "'ghost@sales.example'." in result.stdout)
    job = last_job(crm)
    assert (job.entity, job.dry_run, job.status) == ("opportunities", True, "succeeded")
    assert job.columns_used["Colour"] == "" and job.columns_used["Owner"] == "owner.email"
    assert deals(crm) == []
    with crm.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(StageStay)) == 0


def test_an_import_creates_the_good_rows_and_reports_the_bad(runner, crm, sheet, seller,
                                                              tmp_path):
    report = tmp_path / "report.csv"
    result = runner.invoke(args=["import", "opportunities", str(sheet), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "created 2, updated 0, skipped 0, rejected 4 of 6 rows" in result.stdout
    assert report.read_text(encoding="utf-8-sig").splitlines() == [
        "line,column,value,reason",
        "3,Amount,-5,Must not be negative.",
        "5,Customer,Nobody Ltd,No customer with the name 'Nobody Ltd'.",
        "6,Stage,Nowhere,The pipeline 'New business' has no stage 'Nowhere'.",
        "7,Owner,ghost@sales.example,No active user with the email 'ghost@sales.example'.",
    ]
    tools, minimal = deals(crm)
    assert (tools.name, tools.stage_id, tools.owner_id) == (
        "Tools 2027", stage_id(crm, "Proposal"), seller.id)
    assert (tools.amount, tools.currency, str(tools.expected_close)) == (
        Decimal("1200.50"), "EUR", "2027-03-31")
    assert (tools.probability, tools.source, tools.next_step) == (40, "Fair", "Call back")
    assert minimal.stage_id == stage_id(crm, "Qualification") and minimal.owner_id is None
    with crm.session_factory() as session:
        sources = session.scalars(
            select(AuditEntry.source).where(AuditEntry.entity == "opportunity")).all()
        assert sources == ["import", "import"]
        assert session.scalar(select(func.count()).select_from(StageStay)) == 2


def test_an_exported_file_imports_back(runner, crm, book, tmp_path):
    exported = tmp_path / "deals.csv"
    assert runner.invoke(args=["export", "opportunities", "-o", str(exported)]).exit_code == 0
    result = runner.invoke(args=["import", "opportunities", str(exported)])
    assert result.exit_code == 0, result.output
    assert "created 2, updated 0, skipped 0, rejected 0 of 2 rows" in result.stdout
    ignored = [header for header, target in last_job(crm).columns_used.items() if not target]
    assert ignored[:3] == ["id", "status", "effective_probability"]
    fields = ("name", "customer_id", "stage_id", "owner_id", "amount", "currency",
              "expected_close", "probability", "source", "next_step")
    stored = [tuple(getattr(deal, f) for f in fields) for deal in deals(crm) if not deal.archived]
    assert stored[2:] == stored[:2]


def upload(api: Any, data: bytes, **fields: Any) -> Any:
    form = {"entity": "opportunities", **fields, "file": (io.BytesIO(data), "deals.csv")}
    return api.post("/imports", data=form, content_type="multipart/form-data")


def test_the_api_imports_deals_as_a_job_listing_refused_rows_by_line(client, crm, seller,
                                                                     sheet):
    api = ApiClient(client, api_token(crm, seller))
    dry = upload(api, sheet.read_bytes(), dry_run="true")
    assert dry.status_code == 202, dry.get_data(as_text=True)
    job = api.get(dry.headers["Location"]).get_json()
    assert (job["entity"], job["status"], job["dry_run"]) == ("opportunities", "succeeded", True)
    assert (job["created"], job["rejected"], job["processed_rows"]) == (2, 4, 6)
    assert job["columns_used"]["Deal name"] == "name" and job["file_expires_at"] is not None
    rejections = api.get(job["links"]["rejections"]).get_json()["data"]
    assert [(r["line"], r["column"], r["value"]) for r in rejections] == [
        (3, "Amount", "-5"), (5, "Customer", "Nobody Ltd"), (6, "Stage", "Nowhere"),
        (7, "Owner", "ghost@sales.example"),
    ]
    assert deals(crm) == []
    real = api.post(f"/imports/{job['id']}/rerun", json={"dry_run": False})
    assert real.status_code == 202, real.get_data(as_text=True)
    done = api.get(real.headers["Location"]).get_json()
    assert (done["status"], done["created"], done["rejected"]) == ("succeeded", 2, 4)
    assert [deal.name for deal in deals(crm)] == ["Tools 2027", "Minimal"]
    clerk = ApiClient(client, api_token(crm, make_user(
        crm, "clerk@sales.example", ["customer.view", "customer.edit", "sales.deal.view"])))
    refused = upload(clerk, sheet.read_bytes())
    assert refused.status_code == 403
    assert "'sales.deal.edit'" in refused.get_json()["detail"]


def test_the_import_page_uploads_a_deals_file(app, crm, seller, sheet):
    ui_user(crm, "importer@sales.example", ["customer.view", "sales.deal.view",
                                            "sales.deal.edit"])
    browser = UiBrowser(app.test_client(), "importer@sales.example")
    form = browser.get("/imports")
    assert '<option value="opportunities" selected>Deals</option>' in form
    uploaded = browser.post(
        "/imports",
        {"entity": "opportunities", "dry_run": "true",
         "file": (io.BytesIO(sheet.read_bytes()), "deals.csv")},
        content_type="multipart/form-data",
    )
    page = browser.get(uploaded.headers["Location"])
    assert "Deals" in page and "Must not be negative." in page
    assert "Run again with this mapping" in page and "Import for real" in page
    assert deals(crm) == []
    real = browser.post(uploaded.headers["Location"] + "/import", {})
    assert "import-succeeded" in browser.get(real.headers["Location"])
    assert [deal.name for deal in deals(crm)] == ["Tools 2027", "Minimal"]
    ui_user(crm, "clerk@sales.example", ["customer.view", "customer.edit"])
    clerk = UiBrowser(app.test_client(), "clerk@sales.example").get("/imports")
    assert 'value="opportunities"' not in clerk


def test_references_by_external_id_email_and_ambiguous_names(crm, seller, acme):
    with crm.unit_of_work(actor=seller, source="test") as uow:
        customers.create(uow, {"name": "Twin", "external_id": "T-1"})
        customers.create(uow, {"name": "Twin", "email": "twin@b.example"})
    text = (
        "name,customer.external_id,customer.email,customer.name,stage\n"
        "By id,T-1,,,won\n"
        "By email,,TWIN@b.example,,\n"
        "By name,,,Twin,\n"
    )
    summary = deals_io.import_deals(crm, io.BytesIO(text.encode()), actor=seller)
    assert (summary.created, summary.rejected) == (2, 1)
    assert [(r.line, r.column, r.reason) for r in summary.rejections] == [
        (4, "customer.name", "Several customers have the name 'Twin'.")
    ]
    won, by_email = deals(crm)
    assert won.status == "won" and won.owner_id == seller.id
    assert by_email.customer_id != won.customer_id


def test_a_rep_imports_only_for_customers_they_see(crm, rep, book, acme):
    text = "name,customer\nMine,Rep's Customer\nTheirs,ACME Tools GmbH\n"
    summary = deals_io.import_deals(crm, io.BytesIO(text.encode()), actor=rep)
    assert summary.created == 1
    assert [r.reason for r in summary.rejections] == [
        "No customer with the name 'ACME Tools GmbH'."
    ]
    mine = deals(crm)[-1]
    assert (mine.name, mine.owner_id) == ("Mine", rep.id)


def test_who_may_not_create_deals_imports_nothing(runner, crm, sheet):
    viewer = make_user(crm, "viewer@sales.example", ["sales.deal.view", "customer.view"])
    result = runner.invoke(args=["import", "opportunities", str(sheet), "--as", viewer.email])
    assert result.exit_code != 0 and "sales.deal.edit" in result.output
    assert deals(crm) == []


def test_a_file_without_the_columns_a_deal_needs_is_refused_whole(runner, crm, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("title,amount\nX,5\n", encoding="utf-8")
    result = runner.invoke(args=["import", "opportunities", str(path)])
    assert result.exit_code != 0
    assert "the file needs a customer column" in result.output
    assert last_job(crm).status == "failed"
    assert deals(crm) == []
    assert runner.invoke(args=["sales", "import", str(path)]).exit_code == 2  # no alias left


def test_references_are_read_once_per_batch(crm, seller, acme):
    text = "name,customer,owner\n" + "".join(
        f"Deal {n},ACME Tools GmbH,{seller.email}\n" for n in range(25)
    )
    with sql_statements(crm) as statements:
        summary = deals_io.import_deals(crm, io.BytesIO(text.encode()), actor=seller)
    assert summary.created == 25
    lookups = [s for s in statements if "GROUP BY customer.name" in s]
    owners = [s for s in statements if "WHERE user.email IN" in s.replace('"', "")]
    assert len(lookups) == 1 and len(owners) == 1


class _Refuse(Exception):
    """What the failing plugin below raises."""


def _refuse_vetoed(uow: Any, opportunity: Any) -> None:
    if opportunity.name == "Vetoed":
        raise _Refuse("the ERP says no")


class TestWithAFailingHook:
    """A plugin whose ``crm_sales_on_opportunity_created`` refuses deals called *Vetoed*."""

    @pytest.fixture
    def crm_plugin_modules(self) -> list[Any]:
        return [plugin_module("veto", crm_sales_on_opportunity_created=_refuse_vetoed)]

    def test_a_failing_hook_refuses_its_row_only(self, crm, seller, acme):
        text = f"name,customer_id\nFine,{acme.id}\nVetoed,{acme.id}\nAlso fine,{acme.id}\n"
        summary = deals_io.import_deals(crm, io.BytesIO(text.encode()), actor=seller)
        assert [deal.name for deal in deals(crm)] == ["Fine", "Also fine"]
        (rejection,) = summary.rejections
        assert rejection.line == 3 and "the ERP says no" in rejection.reason
        with crm.session_factory() as session:
            assert session.scalar(select(func.count()).select_from(StageStay)) == 2
            assert session.scalar(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.entity == "opportunity")) == 2


def test_the_importer_is_registered_and_reads_rows(crm):
    importer = crm.registry.importers["opportunities"]
    assert (importer.entity, importer.formats) == ("opportunity", ("csv",))
    rows = list(importer.read(io.BytesIO("\ufeffName\tCustomer\tAmount\nA\tB\t\n".encode())))
    assert rows == [{"name": "A", "customer.name": "B"}]
