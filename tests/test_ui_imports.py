"""The import pages of the UI: upload, the job's page, running again, for real, mappings.

With the test setting ``queue_url = "memory://"`` a queued job runs at once, so an
upload's job has finished when the upload's redirect arrives. The UI keeps no state of
its own: every test checks that the only files in the instance folder are the uploads
core's import jobs hold (``import_job.path``).
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from crm_core.db import utcnow
from crm_core.imports import ImportOptions, create_job
from crm_core.imports.jobs import uploads_folder
from crm_core.models import Customer, ImportJob, ImportMapping, User
from crm_core.testing import ApiClient, UiBrowser, api_token, link_of, sql_statements, ui_user
from crm_core.web.api.pagination import Cursor

pytestmark = pytest.mark.plugins()

CSV = b"name,email\nAcme,info@acme.example\nBad,not-an-email\nBeta,beta@x.example\n"
FIRMS = b"Company,Town,Notes\nAcme,Berlin,wholesale\nBeta,Rom,retail\n"
CLERK = ["customer.view", "customer.edit"]


def _count(crm: Any, model: Any, *where: Any) -> int:
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def upload(browser: UiBrowser, data: bytes | None = CSV, filename: str = "people.csv",
           status: int = 302, **fields: Any) -> Any:
    """Post the upload form as a browser does (dry run unless ``dry_run=None``)."""
    form: dict[str, Any] = {"entity": "customers", "dry_run": "true", **fields}
    form = {key: value for key, value in form.items() if value is not None}
    if data is not None:
        form["file"] = (io.BytesIO(data), filename)
    return browser.post("/imports", form, status=status, content_type="multipart/form-data")


def job_id_of(response: Any) -> int:
    found = re.fullmatch(r"/imports/(\d+)", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


def instance_files(crm: Any) -> list[Path]:
    """Every file in the instance folder."""
    folder = Path(crm.settings.instance_path)
    return sorted(path for path in folder.rglob("*") if path.is_file())


def kept_files(crm: Any) -> list[Path]:
    """The uploads the import jobs keep (the files of dry runs, until they expire)."""
    with crm.session_factory() as session:
        paths = session.scalars(
            select(ImportJob.path).where(ImportJob.file_expires_at.is_not(None))
        ).all()
    return sorted(Path(path) for path in paths)


@pytest.fixture(autouse=True)
def no_side_files(crm: Any) -> Iterator[None]:
    """After each test, every file in the instance folder is an upload a job holds."""
    yield
    with crm.session_factory() as session:
        held = {Path(path) for path in session.scalars(select(ImportJob.path)) if path}
    folder = uploads_folder(crm)
    strays = [
        path for path in instance_files(crm) if path not in held or folder not in path.parents
    ]
    assert strays == [], "files the import jobs do not hold"


# -- the list, the form and the navigation --------------------------------------------------------


def test_anonymous_visitors_sign_in_first(client):
    for path in ("/imports", "/imports/1", "/imports/1/report.csv"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_the_import_page_has_the_form_and_the_navigation_entry(ui):
    page = ui.get("/imports")
    assert '<a href="/imports" aria-current="page">Import</a>' in page
    assert '<a href="/exports">Export</a>' in page
    assert 'enctype="multipart/form-data"' in page and 'name="csrf_token"' in page
    assert '<label for="file">File' in page and 'accept=".csv,.tsv,.txt,.vcf,.vcard"' in page
    for value in ("customers", "contacts", "interactions"):
        assert f'<option value="{value}"' in page
    for value in ("auto", "external_id", "email", "none", "update", "skip", "create"):
        assert f'<option value="{value}">{value}</option>' in page
    assert '<input id="dry_run" name="dry_run" type="checkbox" value="true" checked' in page
    assert "No imports yet." in page


# -- a dry run, then for real --------------------------------------------------------------------


def test_a_dry_run_shows_counts_mapping_and_rejections_then_imports_for_real(crm, ui):
    response = upload(ui)
    dry_id = job_id_of(response)
    assert _count(crm, Customer) == 0  # a dry run saves nothing
    page = ui.get(f"/imports/{dry_id}")
    assert "people.csv was uploaded for a dry run." in page
    assert "<h1>Import of people.csv</h1>" in page and ">dry run</span>" in page
    assert "<dt>Created</dt><dd>2</dd>" in page and "<dt>Rejected</dt><dd>1</dd>" in page
    assert "<dt>Updated</dt><dd>0</dd>" in page and "<dt>Skipped</dt><dd>0</dd>" in page
    assert '<progress id="import-progress" max="100" value="100.0">' in page
    assert 'http-equiv="refresh"' not in page  # finished: no refreshing
    assert ("<tr><th scope=\"row\">3</th><td>email</td><td>not-an-email</td>"
            "<td>Not a valid email address.</td></tr>") in page
    assert f'href="/imports/{dry_id}/report.csv"' in page
    assert '<label for="column-0">name</label>' in page
    assert '<label for="column-1">email</label>' in page
    assert '<option value="email" selected>email</option>' in page
    assert "Run again with this mapping" in page and "Save mapping" in page
    assert "Import for real" in page
    with crm.session_factory() as session:
        dry = session.get(ImportJob, dry_id)
        assert dry.columns_used == {"name": "name", "email": "email"}
    assert kept_files(crm) == instance_files(crm) == [Path(dry.path)]

    real = ui.post(f"/imports/{dry_id}/import", {})
    real_id = job_id_of(real)
    assert real_id != dry_id
    assert _count(crm, Customer) == 2
    assert kept_files(crm) == instance_files(crm) == []  # imported for real: deleted
    page = ui.get(f"/imports/{real_id}")
    assert "people.csv is being imported for real." in page
    assert ">dry run</span>" not in page and "<dt>Created</dt><dd>2</dd>" in page
    assert "Import for real" not in page and "Run again with this mapping" not in page
    assert '<th scope="row">name</th>' in page  # the mapping used, read-only
    dry_page = ui.get(f"/imports/{dry_id}")
    assert "Import for real" not in dry_page and "The file is no longer kept" in dry_page
    listed = ui.get("/imports")
    assert listed.index(f'href="/imports/{real_id}"') < listed.index(f'href="/imports/{dry_id}"')
    # Too late: the file is gone.
    gone = ui.post(f"/imports/{dry_id}/import", {})
    assert gone.headers["Location"] == f"/imports/{dry_id}"
    assert (f"Import {dry_id} cannot run again: its file is no longer kept"
            in ui.get(f"/imports/{dry_id}"))
    assert _count(crm, ImportJob) == 2


def test_a_real_import_from_the_form_keeps_no_file(crm, ui):
    job_id = job_id_of(upload(ui, dry_run=None))
    assert _count(crm, Customer) == 2 and kept_files(crm) == []
    page = ui.get(f"/imports/{job_id}")
    assert "people.csv was uploaded." in page and "Import for real" not in page
    ui.post(f"/imports/{job_id}/import", {}, status=400)  # not a dry run


def test_the_report_is_the_apis_csv(client, crm, ui):
    job_id = job_id_of(upload(ui))
    response = client.get(f"/imports/{job_id}/report.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="people-rejected.csv"'
    assert response.get_data(as_text=True).splitlines() == [
        "line,column,value,reason",
        "3,email,not-an-email,Not a valid email address.",
    ]
    api = ApiClient(client, api_token(crm, ui_user(crm, "api@ui.example")))
    assert api.get(f"/imports/{job_id}/report.csv").get_data() == response.get_data()


def test_more_than_fifty_rejections_show_the_first_fifty(ui):
    rows = b"name,email\n" + b"".join(b"N%d,bad%d\n" % (i, i) for i in range(60))
    page = ui.get(f"/imports/{job_id_of(upload(ui, rows))}")
    assert page.count("<td>Not a valid email address.</td>") == 50
    assert "The first 50 reasons" in page and "<dt>Rejected</dt><dd>60</dd>" in page
    assert "bad49" in page and "bad50" not in page


# -- changing the mapping -------------------------------------------------------------------------


def test_running_again_with_another_mapping_then_for_real(crm, ui):
    dry_id = job_id_of(upload(ui, FIRMS, "firms.csv"))
    page = ui.get(f"/imports/{dry_id}")
    headers = re.findall(r'<label for="(column-\d+)">([^<]+)</label>', page)
    assert [header for _name, header in headers] == ["Company", "Town", "Notes"]
    names = {header: name for name, header in headers}
    assert re.search(rf'id="{names["Town"]}".*?<option value="city" selected>', page, re.S)
    again = ui.post(
        f"/imports/{dry_id}/again",
        {names["Company"]: "name", names["Town"]: "region", names["Notes"]: "industry"},
    )
    again_id = job_id_of(again)
    page = ui.get(f"/imports/{again_id}")
    assert "The dry run runs again with your mapping." in page
    assert "<dt>Created</dt><dd>2</dd>" in page
    assert '<option value="region" selected>region</option>' in page
    assert '<option value="industry" selected>industry</option>' in page
    with crm.session_factory() as session:
        again_job = session.get(ImportJob, again_id)
        first = session.get(ImportJob, dry_id)
    assert again_job.options["columns"] == {"Town": "region", "Notes": "industry"}  # changes
    assert list(again_job.columns_used.items()) == [
        ("Company", "name"), ("Town", "region"), ("Notes", "industry")
    ]
    assert (first.path, first.file_expires_at) == (None, None)  # handed over
    assert kept_files(crm) == instance_files(crm) == [Path(again_job.path)]
    assert "Run again with this mapping" not in ui.get(f"/imports/{dry_id}")
    assert _count(crm, Customer) == 0
    real_id = job_id_of(ui.post(f"/imports/{again_id}/import", {}))
    with crm.session_factory() as session:
        stored = {c.name: (c.city, c.region, c.industry) for c in session.scalars(select(Customer))}
        assert session.get(ImportJob, real_id).dry_run is False
    assert stored == {"Acme": (None, "Berlin", "wholesale"), "Beta": (None, "Rom", "retail")}


def test_a_mapping_that_does_not_fit_is_explained_and_nothing_runs(crm, ui):
    dry_id = job_id_of(upload(ui, FIRMS, "firms.csv"))
    before = _count(crm, ImportJob)
    response = ui.post(
        f"/imports/{dry_id}/again",
        {"column-0": "", "column-1": "city", "column-2": "nmae"},
        status=422,
    )
    page = html.unescape(response.get_data(as_text=True))
    assert "The file could not run again; nothing was imported." in page
    assert "No column fills name" in page and "customer has no field 'nmae'" in page
    assert 'aria-describedby="columns-errors" aria-invalid="true"' in page
    assert '<option value="city" selected>city</option>' in page  # what was chosen stays
    assert _count(crm, ImportJob) == before


def test_saving_the_mapping_and_using_it_on_the_next_upload(crm, ui):
    dry_id = job_id_of(upload(ui, FIRMS, "firms.csv", delimiter=",", match_on="none"))
    saved = ui.post(f"/imports/{dry_id}/mapping", {"name": "Firms"})
    assert saved.headers["Location"] == f"/imports/{dry_id}"
    assert "The mapping “Firms” was saved." in ui.get(f"/imports/{dry_id}")
    with crm.session_factory() as session:
        mapping = session.scalars(select(ImportMapping)).one()
        assert (mapping.name, mapping.entity) == ("Firms", "customer")
        assert mapping.columns == {"Company": "name", "Town": "city"}
        assert mapping.options == {"delimiter": ",", "match_on": "none"}
    page = ui.get("/imports")
    assert '<option value="Firms">Firms (customer)</option>' in page
    job_id = job_id_of(upload(ui, b"Company;Town\nGamma;Oslo\n", "g.csv", mapping="Firms",
                              delimiter=";"))
    with crm.session_factory() as session:
        job = session.get(ImportJob, job_id)
        assert job.options["columns"] == {"Company": "name", "Town": "city"}
        assert job.options["match_on"] == "none" and job.created_count == 1


def test_bad_mapping_names_are_refused_and_nothing_is_saved(crm, ui):
    dry_id = job_id_of(upload(ui, FIRMS, "firms.csv"))
    ui.post(f"/imports/{dry_id}/mapping", {"name": "Firms"})
    taken = ui.post(f"/imports/{dry_id}/mapping", {"name": "Firms"}, status=409)
    page = html.unescape(taken.get_data(as_text=True))
    assert "A mapping named 'Firms' exists already." in page
    assert 'id="name" name="name" type="text" value="Firms"' in page
    assert 'aria-describedby="name-hint name-errors" aria-invalid="true"' in page
    empty = ui.post(f"/imports/{dry_id}/mapping", {"name": "  "}, status=422)
    assert "Give a name of 1 to 120 characters." in empty.get_data(as_text=True)
    ui.post(f"/imports/{dry_id}/mapping", {"name": "x" * 121}, status=422)
    assert _count(crm, ImportMapping) == 1


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"data": None}, "file", "Choose the file to import."),
        ({"entity": "planets"}, "entity", "Unknown entity 'planets'"),
        ({"filename": "people.xlsx"}, "file", "Cannot import .xlsx"),
        ({"entity": "customers", "filename": "c.vcf"}, "file", "vCard files hold contacts only."),
        ({"delimiter": "ab"}, "delimiter", "Give one character"),
        ({"encoding": "klingon"}, "encoding", "unknown encoding 'klingon'"),
        ({"match_on": "phone"}, "match_on", "Use one of auto, external_id, email, none."),
        ({"on_match": "merge"}, "on_match", "Use one of update, skip, create."),
        ({"mapping": "nope"}, "mapping", "No saved mapping 'nope'"),
        ({"data": b"Firm\nAcme\n"}, "columns", "No column fills name"),
        ({"data": b""}, "file", "the file is empty"),
    ],
)
def test_bad_uploads_are_explained_beside_their_field_and_nothing_is_queued(
    crm, ui, fields, field, message
):
    fields = dict(fields)
    data = fields.pop("data", CSV)
    filename = fields.pop("filename", "people.csv")
    response = upload(ui, data, filename, status=422, **fields)
    page = html.unescape(response.get_data(as_text=True))
    errors = re.search(rf'<ul class="field-errors" id="{field}-errors">(.*?)</ul>', page, re.S)
    assert errors and message in errors.group(1), page
    if field != "columns":
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', page)
    assert "nothing was imported" in page
    if "entity" in fields and fields["entity"] != "planets":
        assert f'<option value="{fields["entity"]}" selected>' in page  # what was typed stays
    assert _count(crm, ImportJob) == 0 and kept_files(crm) == []


def test_an_upload_above_the_size_limit_is_refused(app, crm, ui):
    app.config["CRM_IMPORT_MAX_BYTES"] = 20
    response = upload(ui, status=413)
    assert "Larger than 20 bytes." in response.get_data(as_text=True)
    assert _count(crm, ImportJob) == 0


# -- permissions and visibility --------------------------------------------------------------------


def test_users_who_may_not_import_are_refused(app, crm, ui):
    job_id = job_id_of(upload(ui))
    ui_user(crm, "viewer@ui.example", ["customer.view", "contact.view"])
    viewer = UiBrowser(app.test_client(), "viewer@ui.example")
    assert ">Import</a>" not in viewer.get("/")
    page = viewer.get("/imports", status=403)
    assert "You may not do this: you need the permission &#39;customer.edit&#39;" in page
    upload(viewer, status=403)
    viewer.get(f"/imports/{job_id}", status=403)
    viewer.get(f"/imports/{job_id}/report.csv", status=403)
    assert _count(crm, ImportJob) == 1


def test_a_clerk_sees_only_their_own_jobs_and_imports_only_what_they_may_edit(app, crm, ui):
    theirs = job_id_of(upload(ui))
    ui_user(crm, "clerk@ui.example", CLERK, visibility="own")
    clerk = UiBrowser(app.test_client(), "clerk@ui.example")
    page = clerk.get("/imports")
    assert '<option value="customers"' in page and '<option value="contacts"' not in page
    own = job_id_of(upload(clerk))
    listed = clerk.get("/imports")
    assert f'href="/imports/{own}"' in listed and f'href="/imports/{theirs}"' not in listed
    assert "There is no import" in clerk.get(f"/imports/{theirs}", status=404)
    clerk.get(f"/imports/{theirs}/report.csv", status=404)
    clerk.post(f"/imports/{theirs}/import", {}, status=404)
    clerk.post(f"/imports/{theirs}/again", {}, status=404)
    clerk.post(f"/imports/{theirs}/mapping", {"name": "stolen"}, status=404)
    clerk.get("/imports/999999", status=404)
    refused = upload(clerk, b"first_name\nAda\n", entity="contacts", status=403)
    assert "contact.edit" in refused.get_data(as_text=True)
    assert _count(crm, ImportJob) == 2 and _count(crm, ImportMapping) == 0


def test_an_auditor_sees_others_jobs_but_may_not_run_their_files(app, crm, ui):
    ui_user(crm, "clerk@ui.example", CLERK)
    clerk = UiBrowser(app.test_client(), "clerk@ui.example")
    clerks = job_id_of(upload(clerk))
    admin = ui  # holds audit.view
    listed = admin.get("/imports")
    assert f'href="/imports/{clerks}"' in listed and "<td>clerk</td>" in listed
    page = admin.get(f"/imports/{clerks}")
    assert "by clerk" in page and "Import for real" not in page
    assert "Run again with this mapping" not in page
    refused = admin.post(f"/imports/{clerks}/import", {}, status=403)
    assert "only the user who uploaded a file" in refused.get_data(as_text=True)
    admin.post(f"/imports/{clerks}/again", {"column-0": "name"}, status=403)
    assert _count(crm, Customer) == 0 and _count(crm, ImportJob) == 1


# -- progress and paging ---------------------------------------------------------------------------


def test_a_queued_job_refreshes_its_page_and_the_list_pages_with_a_cursor(crm, ui, tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(CSV)
    with crm.session_factory() as session:
        from crm_core.models import User

        admin = session.scalars(select(User).where(User.email == "ui-admin@example.com")).one()
        admin.permissions  # noqa: B018 - loads the roles
    with crm.unit_of_work(actor=admin, source="test") as uow:
        made = [
            create_job(uow, path=path, filename=f"file-{n:02d}.csv",
                       options=ImportOptions("customers"))
            for n in range(27)
        ]
        ids = [job.id for job in made]
    page = ui.get(f"/imports/{ids[-1]}")
    assert '<meta http-equiv="refresh" content="2">' in page
    assert "The import is queued; this page refreshes itself every 2 seconds." in page
    assert "None so far." in page
    first = ui.get("/imports")
    assert first.count('<th scope="row"><a href="/imports/') == 25
    assert "file-26.csv" in first and "file-02.csv" in first and "file-01.csv" not in first
    following = html.unescape(re.search(r'rel="next" href="([^"]+)"', first).group(1))
    second = ui.get(following)
    assert second.count('<th scope="row"><a href="/imports/') == 2
    assert "file-01.csv" in second and "file-00.csv" in second and 'rel="next"' not in second
    assert '<a href="/imports">Newest</a>' in second
    ui.get("/imports?cursor=not-a-cursor", status=400)


def test_the_list_reads_each_page_with_one_query_and_the_shared_pager(crm, ui, tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(CSV)
    with crm.session_factory() as session:
        admin = session.scalars(select(User).where(User.email == "ui-admin@example.com")).one()
        admin.permissions  # noqa: B018 - loads the roles
    with crm.unit_of_work(actor=admin, source="test") as uow:
        ids = [
            create_job(uow, path=path, filename=f"file-{n:02d}.csv",
                       options=ImportOptions("customers")).id
            for n in range(26)
        ]
    with sql_statements(crm) as statements:
        first = ui.get("/imports")
    assert len([s for s in statements if "FROM import_job" in s]) == 1, statements
    assert '<nav class="pager" aria-label="Pages">' in first and ">Newest</a>" not in first
    following = link_of(first)
    # the cursor names the last job shown (as before the shared pager: old links still work)
    last = ids[1]
    assert following == f"/imports?cursor={Cursor('id', True, last, last).encode()}"
    assert 'rel="next" href="' + following + '">Older imports</a>' in first
    with sql_statements(crm) as statements:
        second = ui.get(following)
    assert len([s for s in statements if "FROM import_job" in s]) == 1, statements
    assert second.count('<th scope="row"><a href="/imports/') == 1 and "file-00.csv" in second
    assert "<td>customers</td>" in second
    assert '<span class="badge import-queued">queued</span>' in second
    # a cursor of another list's order, or naming an id no job can have, is refused
    other_order = Cursor("name", False, "Acme", 1).encode()
    ui.get(f"/imports?cursor={other_order}", status=400)
    too_big = Cursor("id", True, 5, 2**40).encode()
    ui.get(f"/imports?cursor={too_big}", status=400)


def test_an_expired_file_cannot_run_again_and_the_page_says_so(crm, ui):
    dry_id = job_id_of(upload(ui, FIRMS, "firms.csv"))
    with crm.unit_of_work(source="test") as uow:
        uow.session.execute(
            update(ImportJob)
            .where(ImportJob.id == dry_id)
            .values(file_expires_at=utcnow() - dt.timedelta(minutes=1))
        )
    page = ui.get(f"/imports/{dry_id}")
    assert "Import for real" not in page and "Run again with this mapping" not in page
    assert "The file is no longer kept" in page
    assert '<th scope="row">Town</th>' in page  # the mapping used, read-only
    for action, form in (("import", {}), ("again", {"column-1": "region"})):
        gone = ui.post(f"/imports/{dry_id}/{action}", form)
        assert gone.headers["Location"] == f"/imports/{dry_id}"
        assert "its file expired" in ui.get(f"/imports/{dry_id}")
    assert _count(crm, ImportJob) == 1


def test_a_dry_run_uploaded_through_the_api_runs_again_here(client, crm, ui):
    with crm.session_factory() as session:
        admin = session.scalars(select(User).where(User.email == "ui-admin@example.com")).one()
    api = ApiClient(client, api_token(crm, admin))
    dry = api.post("/imports", data={"entity": "customers", "dry_run": "true",
                                     "file": (io.BytesIO(FIRMS), "firms.csv")},
                   content_type="multipart/form-data").get_json()
    assert dry["columns_used"] == {"Company": "name", "Town": "city", "Notes": ""}
    page = ui.get(f"/imports/{dry['id']}")
    assert '<option value="city" selected>city</option>' in page
    assert "Import for real" in page and "only the columns mapped explicitly" not in page
    real_id = job_id_of(ui.post(f"/imports/{dry['id']}/import", {}))
    assert api.get(f"/imports/{real_id}").get_json()["created"] == 2
    assert _count(crm, Customer) == 2 and instance_files(crm) == []


def test_the_ui_writes_no_file_of_its_own(crm, ui):
    """Uploads, dry runs, runs again and real imports leave only the jobs' uploads."""
    dry_id = job_id_of(upload(ui, FIRMS, "firms.csv"))
    ui.post(f"/imports/{dry_id}/mapping", {"name": "Firms"})
    again_id = job_id_of(ui.post(f"/imports/{dry_id}/again", {"column-1": "region"}))
    ui.post(f"/imports/{again_id}/again", {"column-0": "", "column-1": "nmae"}, status=422)
    upload(ui, dry_run=None)
    upload(ui, b"", status=422)
    files = instance_files(crm)
    assert len(files) == 1 and files == kept_files(crm)
    assert uploads_folder(crm) in files[0].parents
    job_id_of(ui.post(f"/imports/{again_id}/import", {}))
    assert instance_files(crm) == []


def test_a_vcard_dry_run_has_no_columns_and_imports_for_real(crm, ui):
    cards = b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Kowalska;Ada;;;\r\nFN:Ada Kowalska\r\nEND:VCARD\r\n"
    dry_id = job_id_of(upload(ui, cards, "phone.vcf", entity="contacts"))
    page = ui.get(f"/imports/{dry_id}")
    assert "vCards are read by property" in page and "Run again with this mapping" not in page
    assert "Save mapping" not in page and "<dt>Created</dt><dd>1</dd>" in page
    assert len(kept_files(crm)) == 1
    real_id = job_id_of(ui.post(f"/imports/{dry_id}/import", {}))
    with crm.session_factory() as session:
        job = session.get(ImportJob, real_id)
        assert (job.format, job.dry_run, job.created_count) == ("vcf", False, 1)
        assert job.columns_used is None and session.get(ImportJob, dry_id).columns_used is None
    assert instance_files(crm) == []
