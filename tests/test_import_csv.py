"""CSV imports end to end: mappings, matching, faults, dry runs, hooks, reports, real exports.

Real-world files come from the ``real_world_data`` fixture (tests/conftest.py):
``$CRM_REALWORLD_DATA``, else ``../shared/data/real-world``; missing, the tests fail.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_core import ValidationError
from crm_core.imports import (
    ImportOptions,
    MappingError,
    create_job,
    find_mapping,
    options_from_mapping,
    report_lines,
    run_import,
    run_import_job,
    save_mapping,
)
from crm_core.imports.reading import CsvSource, detect_encoding
from crm_core.models import (
    AuditEntry,
    Contact,
    ContactEmail,
    Customer,
    ImportJob,
    Interaction,
    OutboxEvent,
)
from crm_core.services import contacts, customers
from crm_core.testing import plugin_module

pytestmark = pytest.mark.plugins()


@pytest.fixture
def real_file(real_world_data: Path):
    """Finds a file of the real-world corpus; a missing one fails the test."""

    def find(relative: str) -> Path:
        path = real_world_data / relative
        if not path.exists():
            pytest.fail(f"{relative} is not in {real_world_data}")
        return path

    return find


def imported(crm, text: str | bytes, entity: str = "customers", **options):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return run_import(crm, io.BytesIO(data), ImportOptions(entity=entity, **options))


def count(crm, model, *where) -> int:
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def customer(crm, **by):
    with crm.session_factory() as session:
        found = session.scalars(select(Customer).filter_by(**by)).all()
        assert len(found) == 1, found
        return found[0]


def contact_by_email(crm, email: str) -> Contact:
    with crm.session_factory() as session:
        return session.scalars(
            select(Contact).join(ContactEmail).where(ContactEmail.email == email)
        ).one()


def reasons(summary) -> list[tuple[int, str, str]]:
    return [(r.line, r.column, r.reason) for r in summary.rejections]


# -- reading ----------------------------------------------------------------------------------


def test_encodings_delimiters_and_lines_of_quoted_newlines():
    text = 'name;note\r\n"Acme";"two\nlines"\r\n\r\nBeta;x\r\n'
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "cp1252"):
        source = CsvSource(io.BytesIO(text.encode(encoding)))
        assert source.delimiter == ";" and source.header == ["name", "note"]
        rows = list(source.rows())
        assert [(r.line, r.cells) for r in rows] == [
            (2, ["Acme", "two\nlines"]),
            (5, ["Beta", "x"]),
        ]
    excel = CsvSource(io.BytesIO(b"sep=|\nname|city\nA|B\n"))
    assert excel.delimiter == "|" and [r.line for r in excel.rows()] == [3]
    assert detect_encoding("Crème brûlée".encode("cp1252")).name == "cp1252"
    assert detect_encoding(b"plain ascii").name == "utf-8"


# -- mappings ---------------------------------------------------------------------------------


def test_a_header_of_field_names_imports_without_a_mapping(crm):
    summary = imported(
        crm,
        "name,email,city,country,external_id,tags,kind\n"
        "Acme GmbH,INFO@acme.example,Berlin,de,ACME-1,\"vip, partner\",company\n"
        "Jane Roe,jane@roe.example,Paris,FR,ROE-1,,person\n",
    )
    assert (summary.created, summary.rejected) == (2, 0), summary.rejections
    acme = customer(crm, external_id="ACME-1")
    assert (acme.name, acme.email, acme.country, acme.tags) == (
        "Acme GmbH", "info@acme.example", "DE", ["partner", "vip"]
    )
    assert customer(crm, external_id="ROE-1").kind == "person"
    # Through the service layer: audit entries and outbox events, source "import".
    with crm.session_factory() as session:
        assert session.scalar(
            select(func.count()).select_from(AuditEntry).where(
                AuditEntry.source == "import", AuditEntry.entity_id == str(acme.id)
            )
        ) == 1
    assert count(crm, OutboxEvent, OutboxEvent.entity_id == str(acme.id)) >= 1


def test_saved_mappings_keep_columns_and_reading_options(crm, uow):
    columns = {
        "Vorname": "first_name",
        "Nachname": "last_name",
        "E-Mail geschäftlich": "email.work",
        "E-Mail privat": "email.home",
        "Mobil": "phone.mobile",
        "Stufe": "attributes.tier",
        "Notiz": "",
    }
    save_mapping(uow, "German contacts", "contacts", columns, {"delimiter": ";"})
    uow.session.flush()
    options = options_from_mapping(
        find_mapping(uow.session, "German contacts"), ImportOptions(entity="contacts")
    )
    assert options.delimiter == ";" and options.columns == columns


@pytest.fixture
def crm_settings_overrides():
    tier = {"type": "choice", "choices": ["gold", "silver"]}
    return {"custom_attributes": {"contact.tier": tier}}


def test_mapped_import_fills_labelled_emails_phones_and_custom_attributes(crm):
    text = (
        "Vorname;Nachname;E-Mail geschäftlich;E-Mail privat;Mobil;Stufe;Notiz\n"
        "Anna;Alt;anna@firma.example;anna@privat.example;+49 170 1234567;gold;x\n"
        "Bert;Bau;bert@firma.example;;;platinum;y\n"
    ).encode("cp1252")
    summary = imported(
        crm,
        text,
        "contacts",
        columns={
            "Vorname": "first_name",
            "Nachname": "last_name",
            "E-Mail geschäftlich": "email.work",
            "E-Mail privat": "email.home",
            "Mobil": "phone.mobile",
            "Stufe": "attributes.tier",
            "Notiz": "",
        },
    )
    assert summary.encoding == "cp1252" and summary.delimiter == ";"
    assert summary.created == 1
    assert reasons(summary) == [(3, "Stufe", "Must be one of: gold, silver.")]
    anna = contact_by_email(crm, "anna@firma.example")
    assert [(e.label, e.email) for e in anna.emails] == [
        ("work", "anna@firma.example"), ("home", "anna@privat.example")
    ]
    assert [(p.label, p.number) for p in anna.phones] == [("mobile", "+49 170 1234567")]
    assert anna.attributes == {"tier": "gold"}
    assert summary.rejections[0].value == "platinum"


def test_a_wrong_mapping_is_an_error_before_anything_is_imported(crm):
    text = "Firm,Town\nAcme,Berlin\n"
    with pytest.raises(MappingError) as unknown:
        imported(crm, text, columns={"Firm": "nmae"})
    assert "nmae" in str(unknown.value)
    with pytest.raises(MappingError) as missing:
        imported(crm, text)  # no column fills the required name
    assert "name" in missing.value.messages
    with pytest.raises(MappingError) as absent:
        imported(crm, text, columns={"Company": "name"})
    assert "Company" in absent.value.messages
    with pytest.raises(MappingError):
        imported(crm, text, columns={"Firm": "attributes.nothing"})
    assert count(crm, Customer) == 0
    summary = imported(crm, text, columns={"Firm": "name", "Town": "city"})
    assert summary.created == 1 and customer(crm, name="Acme").city == "Berlin"


# -- faults -----------------------------------------------------------------------------------


def test_faults_good_rows_land_and_every_bad_row_is_reported(crm):
    long_name = "x" * 301
    data = b"".join(
        [
            b"name,email,city,external_id\n",
            "Good One,one@good.example,K\xf6ln,G1\n".encode(),  # line 2
            b"Broken \xff\xfe Bytes,broken@x.example,Berlin,G2\n",  # line 3: not UTF-8
            b"Short Row,short@x.example\n",  # line 4: a missing column
            f"{long_name},long@x.example,Rome,G3\n".encode(),  # line 5: too long
            b"Bad Mail,not-an-email,Paris,G4\n",  # line 6
            b",nameless@x.example,Oslo,G5\n",  # line 7: required name empty
            b"Good Two,two@good.example,\"Multi\nLine City\",G6\n",  # lines 8-9
            b"Good Two again,two@good.example,Bonn,G6\n",  # line 10: duplicate key
            b"Good Three,THREE@good.example,Wien,G7\n",  # line 11
            b"Dup Ext,dup@x.example,Rom,G7\n",  # line 12: duplicate external id
            b"Nul\x00Byte,nul@x.example,Graz,G8\n",  # line 13: a NUL character
        ]
    )
    summary = imported(crm, data, batch_size=4)
    assert summary.processed_rows == 11
    assert (summary.created, summary.updated, summary.rejected) == (3, 2, 6)
    got = reasons(summary)
    assert got[0] == (3, "name", "Not valid UTF-8.")
    assert got[1][0:2] == (4, "") and "2 values" in got[1][2]
    assert got[2] == (5, "name", "Longer than maximum length 300.")
    assert got[3] == (6, "email", "Not a valid email address.")
    assert got[4][0:2] == (7, "name")
    assert got[5][0:2] == (13, "name") and "NUL" in got[5][2]
    assert summary.rejections[0].value == "Broken \ufffd\ufffd Bytes"
    assert summary.rejections[3].value == "not-an-email"
    assert customer(crm, external_id="G1").city == "Köln"
    # The duplicate rows updated the record the earlier row created, never a second one.
    assert customer(crm, external_id="G6").name == "Good Two again"
    assert customer(crm, external_id="G7").name == "Dup Ext"
    assert count(crm, Customer) == 3


def test_a_file_that_cannot_be_decoded_at_all_does_not_crash(crm):
    summary = imported(crm, b"name\n" + b"\x81\x8d\x8f\x90\x9d\n" * 3)
    assert summary.processed_rows == 3 and summary.created + summary.rejected == 3


# -- matching ---------------------------------------------------------------------------------


@pytest.fixture
def stored(crm):
    with crm.unit_of_work() as uow:
        acme = customers.create(
            uow, {"name": "Acme", "email": "info@acme.example", "external_id": "A-1", "tags": ["x"]}
        )
        ann = contacts.create(
            uow,
            {"first_name": "Ann", "last_name": "Old", "external_id": "C-1",
             "emails": [{"email": "ann@acme.example"}], "customer_id": acme.id},
        )
    return {"acme": acme.id, "ann": ann.id}


@pytest.mark.parametrize(
    ("on_match", "created", "updated", "skipped", "name"),
    [("update", 0, 1, 0, "Acme Renamed"), ("skip", 0, 0, 1, "Acme"), ("create", 1, 0, 0, "Acme")],
)
def test_match_on_email(crm, stored, on_match, created, updated, skipped, name):
    summary = imported(
        crm, "name,email,tags\nAcme Renamed,INFO@acme.example,y\n",
        match_on="email", on_match=on_match,
    )
    assert (summary.created, summary.updated, summary.skipped) == (created, updated, skipped)
    assert customer(crm, id=stored["acme"]).name == name
    if on_match == "update":
        assert customer(crm, id=stored["acme"]).tags == ["x", "y"]  # added, not replaced


def test_match_on_external_id_updates_contacts_and_adds_their_emails(crm, stored):
    summary = imported(
        crm,
        "external_id,first_name,last_name,email,phone\n"
        "C-1,Ann,New,ann.new@acme.example,+1 555 0100\n"
        "C-2,Bob,Fresh,bob@acme.example,\n",
        "contacts",
        match_on="external_id",
    )
    assert (summary.created, summary.updated, summary.rejected) == (1, 1, 0), summary.rejections
    with crm.session_factory() as session:
        ann = session.get(Contact, stored["ann"])
        assert ann.last_name == "New"
        assert [e.email for e in ann.emails] == ["ann@acme.example", "ann.new@acme.example"]
        assert ann.customer_id == stored["acme"]
    # create on a taken external id: refused by the service with a clear reason
    again = imported(
        crm, "external_id,last_name\nC-1,Clash\n", "contacts", match_on="external_id",
        on_match="create",
    )
    assert again.rejected == 1
    assert again.rejections[0].column == "external_id"
    assert "Already used by contact" in again.rejections[0].reason


def test_auto_matching_prefers_the_external_id_then_the_email(crm, stored):
    summary = imported(
        crm,
        "last_name,email,customer.external_id\nOlder,ann@acme.example,A-1\n",
        "contacts",
    )
    assert summary.updated == 1
    with crm.session_factory() as session:
        assert session.get(Contact, stored["ann"]).last_name == "Older"


def test_references_by_key_and_unknown_references(crm, stored):
    summary = imported(
        crm,
        "last_name,Company ID\nLinked,A-1\nOrphan,NOPE\n",
        "contacts",
        columns={"Company ID": "customer.external_id"},
        match_on="none",
    )
    assert summary.created == 1
    assert reasons(summary) == [(3, "Company ID", "No customer with the external id 'NOPE'.")]
    with crm.session_factory() as session:
        linked = session.scalars(select(Contact).where(Contact.last_name == "Linked")).one()
        assert linked.customer_id == stored["acme"]


def test_interactions_import_and_reimport_without_duplicates(crm, stored):
    text = (
        "customer,channel,occurred_at,subject,id\n"
        "A-1,Call,2024-03-01T10:00:00+01:00,Kick-off,T-1\n"
        "A-1,fax,2024-03-02T10:00:00Z,Bad channel,T-2\n"
        "A-1,email,2024-03-03 10:00,No zone,T-3\n"
    )
    columns = {"customer": "customer.external_id"}
    first = imported(crm, text, "interactions", columns=columns)
    assert first.created == 1
    got = reasons(first)
    assert got[0][:2] == (3, "channel") and "Unknown channel" in got[0][2]
    assert got[1][:2] == (4, "occurred_at")
    second = imported(crm, text.replace("Kick-off", "Kick-off (moved)"), "interactions",
                      columns=columns)
    assert (second.created, second.updated) == (0, 1)
    assert count(crm, Interaction) == 1
    with crm.session_factory() as session:
        call = session.scalars(select(Interaction)).one()
        assert (call.subject, call.source, call.external_ref) == (
            "Kick-off (moved)", "import", "T-1"
        )


# -- dry runs, hooks, jobs and reports --------------------------------------------------------


def test_a_dry_run_writes_nothing_and_counts_the_same(crm, stored):
    text = (
        "name,email,external_id\nAcme,info@acme.example,A-1\nNew,new@x.example,N-1\n"
        "New again,new2@x.example,N-1\nBad,bad,N-2\n"
    )
    dry = imported(crm, text, dry_run=True, batch_size=2)
    assert count(crm, Customer) == 1
    real = imported(crm, text, batch_size=2)
    assert (dry.created, dry.updated, dry.skipped, dry.rejected) == (
        real.created, real.updated, real.skipped, real.rejected
    ) == (1, 2, 0, 1)
    assert count(crm, Customer) == 2


def _reject_acme(uow, entity, batch):
    for change in batch:
        if entity == "customer" and "acme" in change.data.get("name", "").lower():
            change.reject("name", "Acme is on the blocklist.")


def _explode(uow, entity, batch):
    if any(change.data.get("name") == "Boom" for change in batch):
        raise RuntimeError("the blocklist service is down")


class TestPluginHooks:
    """A plugin refusing a row, and one whose hook raises."""

    @pytest.fixture
    def crm_plugin_modules(self):
        return [
            plugin_module("blocklist", crm_validate=_reject_acme),
            plugin_module("fragile", crm_validate=_explode),
        ]

    def test_hooks_reject_rows_or_roll_back_their_batch_only(self, crm):
        text = "name\nGood 1\nAcme Corp\nGood 2\nBoom\nGood 3\nGood 4\n"
        summary = imported(crm, text, batch_size=2)
        # batches: [Good 1, Acme Corp] [Good 2, Boom] [Good 3, Good 4]
        assert summary.created == 3
        got = reasons(summary)
        assert got[0] == (3, "name", "Acme is on the blocklist.")
        assert [line for line, _c, _r in got[1:]] == [4, 5]
        assert "crm_validate" in got[1][2] and "blocklist service is down" in got[1][2]
        assert "rolled back" in got[1][2]
        with crm.session_factory() as session:
            names = set(session.scalars(select(Customer.name)))
        assert names == {"Good 1", "Good 3", "Good 4"}


def test_a_job_records_progress_rejections_and_a_csv_report(crm, uow, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text('name,email\nOk,ok@x.example\nBad,"not, an email"\n', encoding="utf-8")
    job = create_job(
        uow, path=path, filename=path.name, options=ImportOptions(entity="customers")
    )
    uow.session.flush()
    job_id = job.id
    run_import_job(crm, job_id)
    run_import_job(crm, job_id)  # a finished job is not run again
    with crm.session_factory() as session:
        done = session.get(ImportJob, job_id)
        assert (done.status, done.created_count, done.rejected_count) == ("succeeded", 1, 1)
        assert done.processed_rows == 2 and done.processed_bytes == path.stat().st_size
    report = "".join(report_lines(crm, job_id))
    assert report.splitlines() == [
        "line,column,value,reason",
        '3,email,"not, an email",Not a valid email address.',
    ]
    assert path.exists()  # a file outside the uploads folder is the user's: kept
    assert count(crm, Customer) == 1


def test_a_job_whose_file_cannot_be_read_fails_with_the_reason(crm, uow, tmp_path):
    path = tmp_path / "gone.csv"
    path.write_text("name\nA\n")
    job = create_job(uow, path=path, filename="gone.csv", options=ImportOptions(entity="customers"))
    uow.session.flush()
    path.unlink()
    run_import_job(crm, job.id)
    with crm.session_factory() as session:
        failed = session.get(ImportJob, job.id)
        assert failed.status == "failed" and "cannot open" in failed.error


def test_external_ids_are_unique_per_customer_and_contact(crm):
    with crm.unit_of_work() as uow:
        customers.create(uow, {"name": "One", "external_id": "E-1"})
        result = customers.bulk_create(
            uow, [{"name": "Two", "external_id": "E-1"}, {"name": "Three", "external_id": "E-2"},
                  {"name": "Four", "external_id": "E-2"}]
        )
        assert sorted(result.errors) == [0, 2]
        assert "Already used by customer" in result.errors[0]["external_id"][0]
        assert "twice" in result.errors[2]["external_id"][0]
        contacts.create(uow, {"last_name": "A", "external_id": "E-1"})  # other entity: fine
        with pytest.raises(ValidationError):
            contacts.create(uow, {"last_name": "B", "external_id": "E-1"})
        same = customers.bulk_update(uow, [(result.records[0].id, {"external_id": "E-2"})])
        assert same.ok


# -- real-world exports -----------------------------------------------------------------------


def test_salesforce_accounts_in_cp1252(crm, real_file):
    summary = run_import(
        crm,
        real_file("salesforce_dataloader_export/accountData.csv"),
        ImportOptions(entity="customers"),
    )
    assert summary.encoding == "cp1252"
    assert (summary.processed_rows, summary.created, summary.rejected) == (423, 423, 0)
    assert summary.columns["NAME"] == "name" and summary.columns["ID"] == "external_id"
    assert "OWNERID" in summary.ignored  # a Salesforce user id is not one of ours
    assert customer(crm, name="Crédito Inmobiliario Terras").external_id
    assert customer(crm, street="00045844 c/ San Romualdo, 26 5º").city
    assert count(crm, Customer, Customer.country == "US") == 358 + 5 + 2  # US, United States, USA
    again = run_import(
        crm,
        real_file("salesforce_dataloader_export/accountData.csv"),
        ImportOptions(entity="customers"),
    )
    assert (again.created, again.updated) == (0, 423)


@pytest.mark.parametrize(
    "name",
    ["csvtext_BOM_UTF8.csv", "csvtext_BOM_UTF16LE.csv", "csvtext_BOM_UTF16BE.csv",
     "csvtext_BOM_UTF32LE.csv", "csvtext_BOM_UTF32BE.csv"],
)
def test_every_byte_order_mark(crm, name, real_file):
    summary = run_import(
        crm,
        real_file(f"salesforce_dataloader_export/{name}"),
        ImportOptions(entity="customers", columns={"column1": "name", "column3": "city"}),
    )
    assert (summary.created, summary.rejected) == (2, 0)
    assert customer(crm, name="row2-1").city == "row2-3"


def test_salesforce_quotes_and_separators(crm, real_file):
    quotes = run_import(
        crm,
        real_file("salesforce_dataloader_export/csvEscapedQuotes.csv"),
        ImportOptions(entity="customers", columns={"column1": "name"}),
    )
    assert quotes.created == 2
    assert customer(crm, name='"The Best" Account') and customer(crm, name='The "Best" Account')
    separator = run_import(
        crm,
        real_file("salesforce_dataloader_export/csvSeparator.csv"),
        ImportOptions(entity="customers", columns={"column1": "name", "column2!some": "city"}),
    )
    assert separator.delimiter == "," and separator.created == 2
    assert customer(crm, name="col21").city == "col22!somev2"


def test_odoo_partners(crm, real_file):
    summary = run_import(
        crm,
        real_file("odoo_res_partner_import_export/res.partner.csv"),
        ImportOptions(entity="customers"),
    )
    assert (summary.created, summary.rejected) == (6, 0), summary.rejections
    grocery = customer(crm, external_id="res_partner_1")
    assert (grocery.name, grocery.kind, grocery.country, grocery.region, grocery.postal_code) == (
        "Grocery Outlet", "company", "US", "California", "94107"
    )
    assert grocery.website == "https://groceryoutlet.com"
    assert customer(crm, external_id="res_partner_4").email == "bill@odoo.com"
    assert customer(crm, external_id="res_partner_2").kind == "person"


def test_atomic_crm_contacts(crm, real_file):
    full = run_import(
        crm, real_file("atomic_crm_contacts/contacts.csv"), ImportOptions(entity="contacts")
    )
    assert (full.processed_rows, full.created, full.rejected) == (500, 500, 0), full.rejections
    assert full.columns["email_other"] == "email.other" and full.columns["title"] == "job_title"
    shelley = contact_by_email(crm, "shelley_kerluke47@hotmail.com")
    assert (shelley.first_name, shelley.last_name, shelley.external_id) == (
        "Shelley", "Kerluke", "2"
    )
    assert [(p.label, p.number) for p in shelley.phones] == [("home", "1-955-371-0847 x371")]
    sample = run_import(
        crm,
        real_file("atomic_crm_contacts/contacts_export.csv"),
        ImportOptions(entity="contacts"),
    )
    assert (sample.created, sample.rejected) == (2, 0)
    john = contact_by_email(crm, "john@doe.example")
    assert [e.label for e in john.emails] == ["work", "home", "other"]
    assert john.job_title == "Sales Executive" and john.consent_email is False
