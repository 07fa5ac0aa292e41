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


def test_an_abandoned_uploads_file_is_deleted_a_users_own_file_is_not(crm, tmp_path):
    import datetime as dt

    from crm_core.db import utcnow
    from crm_core.imports import ImportOptions, create_job
    from crm_core.imports.jobs import fail_abandoned, uploads_folder

    uploaded = uploads_folder(crm) / "job-upload" / "people.csv"
    uploaded.parent.mkdir(parents=True, exist_ok=True)
    own = tmp_path / "people.csv"
    for path in (uploaded, own):
        path.write_text("name\nAcme\n", encoding="utf-8")
    with crm.unit_of_work(source="test") as uow:
        jobs = [create_job(uow, path=path, filename="people.csv",
                           options=ImportOptions("customers")) for path in (uploaded, own)]
        for job in jobs:
            job.status = "running"
            job.started_at = job.progressed_at = utcnow() - dt.timedelta(minutes=20)
    assert sorted(fail_abandoned(crm)) == sorted(job.id for job in jobs)
    assert not uploaded.exists() and not uploaded.parent.exists()
    assert own.exists()
    with crm.session_factory() as session:
        assert [session.get(ImportJob, job.id).path for job in jobs] == [None, None]


# -- running a dry run's file again ----------------------------------------------------------------


def rerun(api, job_id: int, body=None, **kwargs):
    return api.post(f"/imports/{job_id}/rerun", json=body, **kwargs)


def test_a_dry_run_shows_its_columns_and_runs_again_then_for_real(api, crm):
    dry = upload(api, dry_run="true").get_json()
    assert dry["columns_used"] == {"name": "name", "email": "email"}
    assert dry["file_expires_at"] is not None and dry["rejected"] == 1
    answer = rerun(api, dry["id"], {"dry_run": True, "columns": {"email": ""}})
    assert answer.status_code == 202, answer.get_data(as_text=True)
    again = answer.get_json()
    assert answer.headers["Location"].endswith(f"/api/v1/imports/{again['id']}")
    polled = api.get(answer.headers["Location"]).get_json()
    assert polled["status"] == "succeeded" and polled["dry_run"] is True
    assert (polled["created"], polled["rejected"]) == (3, 0)  # the email column ignored
    assert polled["columns_used"] == {"name": "name", "email": ""}
    assert polled["options"]["columns"] == {"email": ""}
    assert polled["file_expires_at"] is not None
    assert api.get(f"/imports/{dry['id']}").get_json()["file_expires_at"] is None  # handed over
    real = rerun(api, again["id"], {"dry_run": False})
    assert real.status_code == 202, real.get_data(as_text=True)
    done = api.get(real.headers["Location"]).get_json()
    assert (done["status"], done["dry_run"], done["created"]) == ("succeeded", False, 3)
    assert done["options"]["columns"] == {"email": ""} and done["file_expires_at"] is None
    with crm.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 3
        path = Path(session.get(ImportJob, done["id"]).path)
    assert not path.exists()
    # Every file is gone now: 409 problems saying why.
    for job_id, why in ((dry["id"], "no longer kept"), (done["id"], "not a dry run")):
        gone = rerun(api, job_id, {"dry_run": True})
        assert gone.status_code == 409 and gone.mimetype == PROBLEM
        assert why in gone.get_json()["detail"] and "upload the file again" in gone.json["detail"]


def test_an_expired_dry_run_is_a_conflict(api, crm):
    import datetime as dt

    from crm_core.db import utcnow

    dry = upload(api, dry_run="true").get_json()
    with crm.unit_of_work(source="test") as uow:
        uow.session.get(ImportJob, dry["id"]).file_expires_at = utcnow() - dt.timedelta(seconds=1)
    gone = rerun(api, dry["id"], {"dry_run": False})
    assert gone.status_code == 409 and "its file expired" in gone.get_json()["detail"]
    assert gone.json["type"] == "urn:crm-core:problem:conflict"


def test_rerun_problems_name_the_field_and_change_nothing(api, crm):
    dry = upload(api, dry_run="true").get_json()
    cases = [
        ({"dry_run": True, "columns": {"name": "nmae"}}, 422, "columns"),
        ({"dry_run": True, "columns": {"Nope": "city"}}, 422, "columns"),
        ({"columns": {"name": "name"}}, 422, "dry_run"),
        ({"dry_run": True, "columns": {"name": 5}}, 422, "columns"),
        ({"dry_run": True, "extra": 1}, 422, "extra"),
    ]
    for body, status, field in cases:
        answer = rerun(api, dry["id"], body)
        assert answer.status_code == status, (body, answer.get_data(as_text=True))
        assert answer.mimetype == PROBLEM and field in answer.get_json()["errors"], body
    unknown = rerun(api, dry["id"], {"dry_run": True, "columns": {"name": "nmae"}}).get_json()
    assert "customer has no field 'nmae'" in str(unknown["errors"]["columns"])
    not_json = api.post(f"/imports/{dry['id']}/rerun", data="dry_run=true",
                        content_type="application/x-www-form-urlencoded")
    assert not_json.status_code == 415
    assert rerun(api, dry["id"], [1]).status_code == 400
    with crm.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 1
    assert api.get(f"/imports/{dry['id']}").get_json()["file_expires_at"] is not None
    cards = b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Kowalska;Ada;;;\r\nEND:VCARD\r\n"
    vcf = upload(api, cards, "c.vcf", entity="contacts", dry_run="true").get_json()
    assert vcf["columns_used"] is None and vcf["file_expires_at"] is not None
    refused = rerun(api, vcf["id"], {"dry_run": True, "columns": {"FN": "name"}})
    assert refused.status_code == 422 and "FN" in refused.get_json()["errors"]["columns"]
    assert rerun(api, vcf["id"], {"dry_run": False}).get_json()["created"] == 1


def test_only_the_uploader_runs_a_job_again(client, crm, api):
    clerk = ApiClient(
        client, api_token(crm, make_user(crm, "c@x.example", ["customer.view", "customer.edit"]))
    )
    theirs = upload(api, dry_run="true").get_json()
    assert rerun(clerk, theirs["id"], {"dry_run": False}).status_code == 404  # not visible
    assert rerun(clerk, 999999, {"dry_run": False}).status_code == 404
    own = upload(clerk, dry_run="true").get_json()
    seen = rerun(api, own["id"], {"dry_run": False})  # api sees it (audit.view): 403
    assert seen.status_code == 403 and "only the user who uploaded" in seen.get_json()["detail"]
    viewer = ApiClient(client, api_token(crm, make_user(crm, "v@x.example", ["customer.view"])))
    assert rerun(viewer, own["id"], {"dry_run": False}).status_code == 403
    with crm.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0
    assert rerun(clerk, own["id"], {"dry_run": False}).status_code == 202


def test_the_openapi_document_describes_reruns(api):
    document = api.get("/openapi.json").get_json()
    operation = document["paths"]["/imports/{job_id}/rerun"]["post"]
    assert operation["operationId"] == "imports_rerun"
    assert {"202", "404", "409", "422"} <= set(operation["responses"])
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    schema = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert schema["required"] == ["dry_run"] and "columns" in schema["properties"]
    job = document["components"]["schemas"]["ImportJob"]["properties"]
    assert {"columns_used", "file_expires_at"} <= set(job)
