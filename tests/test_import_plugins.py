"""Plugins' importers that core runs: ``crm import leads``, the API's jobs, the pages.

A plugin made in the test registers the importer ``leads`` (permission ``lead.import``):
a tiny reader of ``Lead,Score`` files that creates a customer per row and refuses rows
whose score is not a number, reporting each batch through core's ``ImportContext``.
With the test setting ``queue_url = "memory://"`` a queued job runs at once.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_core.extensions import Importer, Permission
from crm_core.imports import (
    ImportContext,
    ImportOptions,
    ImportRunner,
    ImportSummary,
    MappingError,
    Rejection,
    run_import,
)
from crm_core.models import Customer, ImportJob
from crm_core.services import customers
from crm_core.testing import ApiClient, UiBrowser, api_token, make_user, plugin_module, ui_user

pytestmark = pytest.mark.plugins()

PROBLEM = "application/problem+json"
PERMISSION = "lead.import"
LEADS = b"Lead,Score,Notes\nAcme,10,x\nBeta,lots,y\nGamma,3,z\n"
#: What a lead's columns fill unless the import maps them explicitly.
AUTOMATIC = {"Lead": "name", "Score": "score"}


class _DryRun(Exception):
    """Rolls a dry run's batch back."""


def read_leads(file: Any) -> Iterator[dict[str, str]]:
    """The importer's ``read``: each row by header."""
    lines = file.read().decode().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        yield dict(zip(header, line.split(","), strict=False))


def run_leads(context: ImportContext) -> ImportSummary:
    """The importer's ``run``: a customer per row, in batches, reported to core."""
    lines = context.stream.read().decode(context.encoding or "utf-8").splitlines()
    header = lines[0].split(context.delimiter or ",")
    mapping = {name: AUTOMATIC.get(name, "") for name in header} | dict(context.columns or {})
    if "name" not in mapping.values():
        raise MappingError({"columns": ["No column fills name."]})
    context.record_columns(mapping)
    column_of = {target: name for name, target in mapping.items() if target}
    rows = [
        (number, dict(zip(header, text.split(context.delimiter or ","), strict=False)))
        for number, text in enumerate(lines[1:], start=2)
    ]
    summary = context.summary()
    for start in range(0, len(rows), context.batch_size):
        batch = rows[start:start + context.batch_size]
        rejections: list[Rejection] = []
        try:
            with context.crm.unit_of_work(actor=context.actor, source="import") as uow:
                for number, cells in batch:
                    score = cells.get(column_of.get("score", ""), "0")
                    if not score.isdigit():
                        rejections.append(
                            Rejection(number, column_of["score"], score, "Not a number.")
                        )
                        continue
                    customers.create(uow, {"name": cells[column_of["name"]]})
                if context.dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        summary.created += len(batch) - len(rejections)
        summary.rejected += len(rejections)
        summary.processed_rows += len(batch)
        summary.processed_bytes = context.stream.tell()
        context.report(rejections, summary)
    return summary


LEAD_IMPORTER = Importer(
    "leads", "lead", ("csv",), read_leads, run=run_leads, permission=PERMISSION,
    label="Leads", targets=("name", "score"),
)


@pytest.fixture
def crm_plugin_modules() -> list[Any]:
    """The plugin ``leads``: its permission and its importer."""
    return [
        plugin_module(
            "leads",
            crm_register_permissions=lambda: [Permission(PERMISSION)],
            crm_register_importers=lambda: [LEAD_IMPORTER],
        )
    ]


def count(crm: Any, model: Any) -> int:
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def names(crm: Any) -> list[str]:
    with crm.session_factory() as session:
        return list(session.scalars(select(Customer.name).order_by(Customer.id)))


def upload(api: ApiClient, data: bytes = LEADS, filename: str = "leads.csv", **fields: Any) -> Any:
    form = {"entity": "leads", **fields, "file": (io.BytesIO(data), filename)}
    return api.post("/imports", data=form, content_type="multipart/form-data")


@pytest.fixture
def leads_csv(tmp_path: Path) -> Path:
    path = tmp_path / "leads.csv"
    path.write_bytes(LEADS)
    return path


# -- the contract ---------------------------------------------------------------------------------


def test_an_importer_needs_its_entitys_edit_permission_unless_it_names_one():
    assert Importer("a", "lead", ("csv",), read_leads).permission == "lead.edit"
    assert Importer("a", "lead", ("csv",), read_leads).run is None
    assert LEAD_IMPORTER.permission == PERMISSION


def test_run_import_calls_the_importer_and_keeps_every_rejection_without_a_job(crm):
    summary = run_import(crm, io.BytesIO(LEADS), ImportOptions("Leads", batch_size=1))
    assert (summary.entity, summary.created, summary.rejected) == ("leads", 2, 1)
    assert summary.processed_rows == 3 and summary.processed_bytes == len(LEADS)
    assert summary.rejections == [Rejection(3, "Score", "lots", "Not a number.")]
    assert names(crm) == ["Acme", "Gamma"]
    with pytest.raises(MappingError) as refused:
        ImportRunner(crm, ImportOptions("leads"))
    assert "imported by its plugin's importer" in str(refused.value)


# -- the command line -----------------------------------------------------------------------------


def test_crm_import_leads_runs_a_job_with_summary_and_report(runner, crm, leads_csv, tmp_path):
    listed = runner.invoke(args=["import", "--help"])
    assert listed.exit_code == 0 and re.search(r"^  leads +Import leads \(Leads\)",
                                               listed.output, re.M), listed.output
    report = tmp_path / "rejected.csv"
    result = runner.invoke(args=["import", "leads", str(leads_csv), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "created 2, updated 0, skipped 0, rejected 1 of 3 rows" in result.stdout
    assert "line 3 Score 'lots': Not a number." in result.stdout
    assert "Importing leads.csv" in result.stderr
    assert report.read_text(encoding="utf-8-sig").splitlines() == [
        "line,column,value,reason",
        "3,Score,lots,Not a number.",
    ]
    assert names(crm) == ["Acme", "Gamma"]
    with crm.session_factory() as session:
        job = session.scalars(select(ImportJob)).one()
        assert (job.entity, job.format, job.status) == ("leads", "csv", "succeeded")
        assert job.columns_used == {"Lead": "name", "Score": "score", "Notes": ""}
        assert (job.processed_rows, job.processed_bytes) == (3, len(LEADS))
        assert job.options["match_on"] is None and job.options["on_match"] is None


def test_a_dry_run_from_the_command_line_saves_nothing_and_maps_columns(runner, crm, tmp_path):
    sheet = tmp_path / "firms.csv"
    sheet.write_text("Firm;Score\nAcme;1\nBeta;2\n", encoding="utf-8")
    args = ["import", "leads", str(sheet), "--delimiter", ";", "--map", "Firm=name"]
    dry = runner.invoke(args=[*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run, nothing saved: would have created 2, updated 0" in dry.stdout
    assert count(crm, Customer) == 0
    real = runner.invoke(args=args)
    assert real.exit_code == 0 and "created 2," in real.stdout
    assert names(crm) == ["Acme", "Beta"]


def test_command_line_refusals_are_errors_with_the_reason(runner, crm, leads_csv, tmp_path):
    core_only = runner.invoke(args=["import", "leads", str(leads_csv), "--match-on", "email"])
    assert core_only.exit_code == 2 and "No such option '--match-on'" in core_only.output
    clerk = make_user(crm, "clerk@x.example", ["customer.view", "customer.edit"])
    refused = runner.invoke(args=["import", "leads", str(leads_csv), "--as", clerk.email])
    assert refused.exit_code == 1 and "'lead.import'" in refused.output
    cards = tmp_path / "c.vcf"
    cards.write_text("BEGIN:VCARD\r\nEND:VCARD\r\n")
    wrong = runner.invoke(args=["import", "leads", str(cards)])
    assert wrong.exit_code == 1 and "leads imports read csv" in wrong.output
    headless = tmp_path / "bad.csv"
    headless.write_text("Who,Score\nAcme,1\n")
    failed = runner.invoke(args=["import", "leads", str(headless)])
    assert failed.exit_code == 1 and "No column fills name." in failed.output
    assert count(crm, Customer) == 0


# -- the API --------------------------------------------------------------------------------------


def test_an_upload_runs_as_a_job_that_lists_its_rejections_by_line(api, crm):
    response = upload(api)
    assert response.status_code == 202, response.get_data(as_text=True)
    job = api.get(response.headers["Location"]).get_json()
    assert (job["entity"], job["status"], job["dry_run"]) == ("leads", "succeeded", False)
    assert (job["created"], job["updated"], job["skipped"], job["rejected"]) == (2, 0, 0, 1)
    assert job["processed_rows"] == 3 and job["progress"] == 100.0
    assert job["columns_used"] == {"Lead": "name", "Score": "score", "Notes": ""}
    rejections = api.get(job["links"]["rejections"]).get_json()["data"]
    assert [(r["line"], r["column"], r["value"], r["reason"]) for r in rejections] == [
        (3, "Score", "lots", "Not a number.")
    ]
    assert api.get(job["links"]["report"]).get_data(as_text=True).splitlines() == [
        "line,column,value,reason",
        "3,Score,lots,Not a number.",
    ]
    assert names(crm) == ["Acme", "Gamma"]


def test_a_dry_run_saves_nothing_and_runs_again_for_real(api, crm):
    dry = upload(api, dry_run="true").get_json()
    assert (dry["status"], dry["dry_run"], dry["created"], dry["rejected"]) == (
        "succeeded", True, 2, 1)
    assert dry["file_expires_at"] is not None and count(crm, Customer) == 0
    remapped = api.post(f"/imports/{dry['id']}/rerun",
                        json={"dry_run": True, "columns": {"Score": ""}})
    assert remapped.status_code == 202, remapped.get_data(as_text=True)
    again = remapped.get_json()
    assert (again["created"], again["rejected"]) == (3, 0) and count(crm, Customer) == 0
    real = api.post(f"/imports/{again['id']}/rerun", json={"dry_run": False})
    assert real.status_code == 202, real.get_data(as_text=True)
    done = api.get(real.headers["Location"]).get_json()
    assert (done["status"], done["dry_run"], done["created"]) == ("succeeded", False, 3)
    assert names(crm) == ["Acme", "Beta", "Gamma"]


def test_without_the_importers_permission_the_upload_is_refused(client, crm):
    clerk = ApiClient(client, api_token(
        crm, make_user(crm, "clerk@x.example", ["customer.view", "customer.edit"])))
    refused = upload(clerk)
    assert refused.status_code == 403 and refused.mimetype == PROBLEM
    assert "you need the permission 'lead.import'" in refused.get_json()["detail"]
    assert count(crm, ImportJob) == 0
    importer = ApiClient(client, api_token(crm, make_user(crm, "l@x.example", [PERMISSION])))
    assert importer.get("/imports").status_code == 200  # the importer's permission suffices
    viewer = ApiClient(client, api_token(crm, make_user(crm, "v@x.example", ["customer.view"])))
    listed = viewer.get("/imports")
    assert listed.status_code == 403 and "or 'lead.import'" in listed.get_json()["detail"]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"entity": "planets"}, "entity", "use customers, contacts, interactions or leads"),
        ({"match_on": "email"}, "match_on", "leads imports do not match rows"),
        ({"on_match": "skip"}, "on_match", "leave on_match out"),
        ({"filename": "cards.vcf"}, "format", "leads imports read csv"),
        ({"filename": "sheet.xlsx"}, "file", "leads imports read csv"),
    ],
)
def test_refused_uploads_are_problems_naming_the_field(api, crm, fields, field, message):
    fields = dict(fields)
    response = upload(api, filename=fields.pop("filename", "leads.csv"), **fields)
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert message in str(response.get_json()["errors"][field])
    assert count(crm, ImportJob) == 0


def test_a_file_the_importer_cannot_map_fails_its_job_with_the_reason(api, crm):
    job = upload(api, b"Who,Score\nAcme,1\n").get_json()
    assert job["status"] == "failed" and job["error"] == "columns: No column fills name."
    assert count(crm, Customer) == 0


def test_the_openapi_document_lists_the_importer(api):
    document = api.get("/openapi.json").get_json()
    body = document["paths"]["/imports"]["post"]["requestBody"]["content"]
    entity = body["multipart/form-data"]["schema"]["properties"]["entity"]
    assert entity["enum"] == ["customers", "contacts", "interactions", "leads"]


# -- the pages ------------------------------------------------------------------------------------


def test_the_import_page_offers_the_importer_to_those_who_may_use_it(app, crm, ui):
    page = ui.get("/imports")
    assert '<option value="leads">Leads</option>' in page
    ui_user(crm, "clerk@x.example", ["customer.view", "customer.edit"])
    assert 'value="leads"' not in UiBrowser(app.test_client(), "clerk@x.example").get("/imports")
    ui_user(crm, "lead@x.example", [PERMISSION])
    importer = UiBrowser(app.test_client(), "lead@x.example")
    assert '<a href="/imports">Import</a>' in importer.get("/")
    form = importer.get("/imports")
    assert '<option value="leads" selected>Leads</option>' in form  # all they may import
    assert 'value="customers"' not in form
    response = ui.post("/imports", {"entity": "leads", "dry_run": "true",
                                    "file": (io.BytesIO(LEADS), "leads.csv")},
                       content_type="multipart/form-data")
    job_page = ui.get(response.headers["Location"])
    assert "Leads" in job_page and "Match on" not in job_page
    assert "Not a number." in job_page and "Run again with this mapping" in job_page
    assert "Save mapping" not in job_page
    ui.post(response.headers["Location"] + "/import", {})
    assert names(crm) == ["Acme", "Gamma"]
