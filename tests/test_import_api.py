"""``/api/v1/imports`` and ``/api/v1/import-mappings``: upload, poll, report, problems.

With the test setting ``queue_url = "memory://"`` a queued job runs at once, so an
upload's job has finished when ``POST`` answers.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_core import builtin
from crm_core.extensions import Job
from crm_core.imports import JOB_NAME, run_import_job
from crm_core.models import Customer, ImportJob
from crm_core.testing import ApiClient, api_token, make_user, plugin_module

pytestmark = pytest.mark.plugins()

PROBLEM = "application/problem+json"
CSV = b"name,email\nAcme,info@acme.example\nBad,not-an-email\nBeta,beta@x.example\n"


@pytest.fixture
def crm_plugin_modules():
    """Register the import job unless core does already."""
    registered = {job.name for job in getattr(builtin, "crm_register_jobs", lambda: [])()}
    if JOB_NAME in registered:
        return []
    return [plugin_module("import_job", crm_register_jobs=lambda: [Job(JOB_NAME, run_import_job)])]


def upload(api, data: bytes = CSV, filename: str = "people.csv", **fields):
    form = {"entity": "customers", **fields}
    if data is not None:
        form["file"] = (io.BytesIO(data), filename)
    return api.post("/imports", data=form, content_type="multipart/form-data")


def test_upload_returns_a_job_to_poll_and_its_report(api, crm):
    response = upload(api)
    assert response.status_code == 202, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.endswith(f"/api/v1/imports/{response.get_json()['id']}")
    job = api.get(location).get_json()
    assert job["status"] == "succeeded" and job["progress"] == 100.0
    assert (job["created"], job["updated"], job["skipped"], job["rejected"]) == (2, 0, 0, 1)
    assert job["processed_rows"] == 3 and job["entity"] == "customer"
    rejections = api.get(job["links"]["rejections"]).get_json()
    assert [(r["line"], r["column"], r["value"]) for r in rejections["data"]] == [
        (3, "email", "not-an-email")
    ]
    report = api.get(job["links"]["report"])
    assert report.status_code == 200 and report.mimetype == "text/csv"
    assert report.get_data(as_text=True).splitlines() == [
        "line,column,value,reason",
        "3,email,not-an-email,Not a valid email address.",
    ]
    assert "attachment" in report.headers["Content-Disposition"]
    with crm.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 2
        stored = session.get(ImportJob, job["id"])
        assert stored.path is not None
    assert not Path(stored.path).exists()  # removed once imported
    listed = api.get("/imports").get_json()
    assert [item["id"] for item in listed["data"]] == [job["id"]]


def test_options_mappings_and_dry_runs_through_the_api(api, crm):
    saved = api.post(
        "/import-mappings",
        json={"name": "firms", "entity": "customers", "columns": {"Firm": "name", "Town": "city"},
              "options": {"delimiter": ";"}},
    )
    assert saved.status_code == 201, saved.get_data(as_text=True)
    mapping = saved.get_json()
    assert api.get(saved.headers["Location"]).get_json()["columns"]["Firm"] == "name"
    data = b"Firm;Town\nAcme;Berlin\n"
    dry = upload(api, data, "firms.txt", mapping="firms", dry_run="true").get_json()
    assert dry["dry_run"] and dry["created"] == 1
    with crm.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0
    done = upload(api, data, "firms.csv", mapping="firms").get_json()
    assert done["created"] == 1
    again = upload(api, b"Firm;Town\nAcme;Bonn\n", "f.csv", mapping="firms",
                   match_on="none", on_match="create").get_json()
    assert again["created"] == 1
    explicit = upload(api, b"Firma,Ort\nGamma,Rom\n", "g.csv",
                      columns='{"Firma": "name", "Ort": "city"}').get_json()
    assert explicit["created"] == 1 and explicit["options"]["columns"]["Ort"] == "city"
    changed = api("PUT", f"/import-mappings/{mapping['id']}",
                  json={"name": "firms2", "entity": "customers", "columns": {"Firm": "name"}})
    assert changed.status_code == 200 and changed.get_json()["name"] == "firms2"
    assert [m["name"] for m in api.get("/import-mappings").get_json()["data"]] == ["firms2"]
    assert api.delete(f"/import-mappings/{mapping['id']}").status_code == 204
    assert api.get(f"/import-mappings/{mapping['id']}").status_code == 404


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"file": None}, 422, "file"),
        ({"entity": "planets"}, 422, "entity"),
        ({"columns": "{not json"}, 400, "columns"),
        ({"columns": '{"name": 5}'}, 400, "columns"),
        ({"columns": '{"name": "nmae"}'}, 422, "columns"),
        ({"filename": "people.xlsx"}, 422, "file"),
        ({"match_on": "phone"}, 422, "match_on"),
        ({"dry_run": "perhaps"}, 422, "dry_run"),
        ({"mapping": "nope"}, 422, "mapping"),
        ({"data": b"Firm\nAcme\n"}, 422, "columns"),
        ({"entity": "interactions", "filename": "c.vcf"}, 422, "format"),
    ],
)
def test_bad_uploads_are_problems_naming_the_field(api, crm, fields, status, field):
    fields = dict(fields)
    data = fields.pop("data", CSV)
    filename = fields.pop("filename", "people.csv")
    if fields.pop("file", "") is None:
        data = None
    response = upload(api, data, filename, **fields)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert field in response.get_json()["errors"]
    with crm.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_too_large_and_not_multipart(api, app):
    app.config["CRM_IMPORT_MAX_BYTES"] = 20
    assert upload(api).status_code == 413
    del app.config["CRM_IMPORT_MAX_BYTES"]
    assert api.post("/imports", json={"entity": "customers"}).status_code == 415


def test_permissions_and_who_sees_which_job(client, crm, api):
    viewer = ApiClient(client, api_token(crm, make_user(crm, "v@x.example", ["customer.view"])))
    refused = upload(viewer)
    assert refused.status_code == 403 and refused.mimetype == PROBLEM
    clerk = ApiClient(
        client, api_token(crm, make_user(crm, "c@x.example", ["customer.view", "customer.edit"]))
    )
    own = upload(clerk).get_json()
    theirs = upload(api).get_json()
    assert [item["id"] for item in clerk.get("/imports").get_json()["data"]] == [own["id"]]
    assert clerk.get(f"/imports/{theirs['id']}").status_code == 404
    assert clerk.get(f"/imports/{theirs['id']}/report.csv").status_code == 404
    everyone = {item["id"] for item in api.get("/imports").get_json()["data"]}
    assert everyone == {own["id"], theirs["id"]}  # api holds audit.view
    assert clerk.post(
        "/import-mappings", json={"name": "x", "entity": "contacts", "columns": {}}
    ).status_code == 403
    assert api.get("/imports/999999").status_code == 404


def test_paginated_rejections(api):
    rows = b"name,email\n" + b"".join(b"N%d,bad%d\n" % (i, i) for i in range(5))
    job = upload(api, rows).get_json()
    first = api.get(f"/imports/{job['id']}/rejections", query_string={"limit": 2}).get_json()
    assert [r["line"] for r in first["data"]] == [2, 3] and first["next"]
    lines = [r["line"] for r in api.collect(f"/imports/{job['id']}/rejections?limit=2")]
    assert lines == [2, 3, 4, 5, 6]


def test_the_openapi_document_describes_imports(api):
    document = api.get("/openapi.json").get_json()
    assert "/imports" in document["paths"] and "/import-mappings/{mapping_id}" in document["paths"]
    assert "multipart/form-data" in document["paths"]["/imports"]["post"]["requestBody"]["content"]


def test_a_job_its_worker_abandoned_is_marked_failed_and_says_how_to_finish(api, crm, tmp_path):
    import datetime as dt

    from crm_core.db import utcnow
    from crm_core.imports import ImportOptions, create_job
    from crm_core.imports.jobs import fail_abandoned

    path = tmp_path / "people.csv"
    path.write_text("name\nAcme\n", encoding="utf-8")
    with crm.unit_of_work(source="test") as uow:
        made = [
            create_job(uow, path=path, filename="people.csv", options=ImportOptions("customers"))
            for _ in range(2)
        ]
        stalled, busy = made
        for job, ago in ((stalled, 16), (busy, 1)):
            job.status = "running"
            job.started_at = job.progressed_at = utcnow() - dt.timedelta(minutes=ago)
    assert fail_abandoned(crm) == [stalled.id]
    assert fail_abandoned(crm) == []
    answer = api.get(f"/imports/{stalled.id}")
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "failed"
    assert "import the file again to finish" in answer.json["error"]
    assert api.get(f"/imports/{busy.id}").json["status"] == "running"
