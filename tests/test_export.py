"""Exports: CSV, JSON Lines and vCard, streamed in batches, only what the caller may see.

Through :func:`crm_core.exports.prepare_export`, the ``crm export`` command and
``GET /api/v1/exports/<name>.<format>``; plugins' exports through ``crm_register_exporters``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest
import vobject
from sqlalchemy import select

from crm_core import PermissionDenied, PluginError
from crm_core.exports import ExportError, export_sources, prepare_export
from crm_core.extensions import Exporter
from crm_core.models import Contact, Customer
from crm_core.services import contacts, customers, interactions
from crm_core.testing import ApiClient, api_token, make_user, plugin_module

pytestmark = pytest.mark.plugins()

VIEW = ["customer.view", "contact.view", "interaction.view"]
LONG_TITLE = "Leiterin für Qualitätssicherung, Einkauf; Logistik und Ersatzteilversorgung Süd"


@pytest.fixture
def crm_settings_overrides() -> dict[str, Any]:
    """A custom attribute per entity: CSV files give each a column."""
    return {
        "custom_attributes": {
            "customer.segment": {"type": "choice", "choices": ["smb", "enterprise"]},
            "contact.shoe_size": {"type": "integer"},
        }
    }


@pytest.fixture
def people(crm: Any) -> dict[str, Any]:
    """An admin who sees everything, a seller who sees their own records, and a nobody."""
    return {
        "admin": make_user(crm, "admin@export.example"),
        "seller": make_user(crm, "seller@export.example", VIEW, visibility="own"),
        "nobody": make_user(crm, "nobody@export.example", ["customer.view"]),
    }


@pytest.fixture
def records(crm: Any, people: dict[str, Any]) -> dict[str, Any]:
    """Customers, contacts and interactions of the seller and of others."""
    seller = people["seller"]
    with crm.unit_of_work(source="test") as uow:
        own = customers.create(uow, {"name": "Seller's Co", "tags": ["vip", "b2b"],
                                     "owner_id": seller.id, "attributes": {"segment": "smb"}})
        other = customers.create(uow, {"name": 'Other, "Quoted"\nCo', "tags": ["日本"],
                                       "city": "Zürich"})
        emma = contacts.create(uow, {
            "customer_id": own.id, "first_name": "Émma", "last_name": "Zoë; Müller",
            "job_title": LONG_TITLE, "consent_email": True, "attributes": {"shoe_size": 42},
            "emails": [{"email": "emma@own.example", "label": "work"},
                       {"email": "emma@home.example", "label": "home"}],
            "phones": [{"number": "+49 30 555", "label": "mobile"},
                       {"number": "030 666", "label": "work"}],
        })
        max_ = contacts.create(uow, {"customer_id": other.id, "first_name": "Max",
                                     "last_name": "Other", "external_id": "ERP-7"})
        lone = contacts.create(uow, {"last_name": "Lone", "owner_id": seller.id,
                                     "emails": [{"email": "lone@example.com"}]})
        gone = contacts.create(uow, {"customer_id": own.id, "last_name": "Gone"})
        contacts.archive(uow, gone.id)
        call = interactions.create(uow, {
            "customer_id": own.id, "contact_id": emma.id, "channel": "call", "direction": "out",
            "occurred_at": dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
            "subject": "Angebot", "body": "Zeile 1\nZeile 2",
        })
        note = interactions.create(uow, {
            "customer_id": other.id, "channel": "note",
            "occurred_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        })
    return {"own": own.id, "other": other.id, "emma": emma.id, "max": max_.id,
            "lone": lone.id, "gone": gone.id, "call": call.id, "note": note.id}


def _text(crm: Any, name: str, format: str = "csv", **kwargs: Any) -> str:
    return "".join(prepare_export(crm, name, format, **kwargs).stream())


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


# -- CSV ------------------------------------------------------------------------------------------


def test_contacts_csv_has_the_documented_columns_and_cells(crm, records):
    text = _text(crm, "contacts")
    assert not text.startswith("\ufeff")
    assert text.endswith("\r\n") and "\r\n" in text.split("\n", 1)[0] + "\n"
    header = text.split("\r\n", 1)[0].split(",")
    assert header == [
        "customer_id", "first_name", "last_name", "job_title", "external_id", "owner_id",
        "emails", "email_labels", "phones", "phone_labels", "consent_email", "consent_email_at",
        "consent_phone", "consent_phone_at", "attributes.shoe_size", "id", "archived",
        "merged_into_id", "version", "created_at", "updated_at",
    ]
    rows = {int(row["id"]): row for row in _csv(text)}
    assert set(rows) == {records["emma"], records["max"], records["lone"]}  # not the archived
    emma = rows[records["emma"]]
    assert emma["last_name"] == "Zoë; Müller" and emma["job_title"] == LONG_TITLE
    assert emma["emails"] == "emma@own.example; emma@home.example"
    assert emma["email_labels"] == "work; home"
    assert emma["phones"] == "+49 30 555; 030 666" and emma["phone_labels"] == "mobile; work"
    assert emma["consent_email"] == "true" and emma["consent_phone"] == "false"
    assert dt.datetime.fromisoformat(emma["consent_email_at"]).tzinfo is not None
    assert emma["consent_phone_at"] == "" and emma["merged_into_id"] == ""
    assert emma["attributes.shoe_size"] == "42" and emma["archived"] == "false"
    created = dt.datetime.fromisoformat(emma["created_at"])
    assert created.utcoffset() == dt.timedelta(0)
    assert rows[records["max"]]["emails"] == "" and rows[records["max"]]["external_id"] == "ERP-7"

    archived = {int(row["id"]): row for row in _csv(_text(crm, "contacts",
                                                          include_archived=True))}
    assert archived[records["gone"]]["archived"] == "true"


def test_customers_csv_quotes_per_rfc_4180_and_joins_tags(crm, records):
    text = _text(crm, "customers", excel=True)
    assert text.startswith("\ufeff")
    rows = {int(row["id"]): row for row in _csv(text.removeprefix("\ufeff"))}
    assert rows[records["own"]]["tags"] == "b2b, vip"
    assert rows[records["own"]]["attributes.segment"] == "smb"
    assert rows[records["other"]]["name"] == 'Other, "Quoted"\nCo'
    assert '"Other, ""Quoted""\nCo"' in text
    assert rows[records["other"]]["tags"] == "日本" and rows[records["other"]]["city"] == "Zürich"
    header = text.removeprefix("\ufeff").split("\r\n", 1)[0].split(",")
    assert header.index("external_id") < header.index("id")  # an import reads external_id


def test_interactions_csv_keeps_line_breaks_and_timestamps(crm, records):
    rows = {int(row["id"]): row for row in _csv(_text(crm, "interactions"))}
    call = rows[records["call"]]
    assert call["body"] == "Zeile 1\nZeile 2" and call["direction"] == "out"
    assert call["occurred_at"] == "2024-05-06T07:08:09.123456+00:00"
    assert rows[records["note"]]["direction"] == ""


# -- JSON Lines -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["customers", "contacts", "interactions"])
def test_jsonl_records_are_what_the_api_shows(crm, records, api, name):
    lines = _jsonl(_text(crm, name, "jsonl"))
    assert lines
    for record in lines:
        response = api.get(f"/{name}/{record['id']}")
        assert response.status_code == 200
        assert record == response.get_json()


def test_jsonl_holds_archived_records_only_when_asked(crm, records):
    ids = {record["id"] for record in _jsonl(_text(crm, "contacts", "jsonl"))}
    assert records["gone"] not in ids
    everything = _jsonl(_text(crm, "contacts", "jsonl", include_archived=True))
    gone = next(record for record in everything if record["id"] == records["gone"])
    assert gone["archived"] is True and gone["emails"] == []


# -- vCard ----------------------------------------------------------------------------------------


def test_contacts_as_vcards_parse_back(crm, records):
    text = _text(crm, "contacts", "vcf")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    assert text.count("BEGIN:VCARD\r\n") == 3 and "\n" not in text.replace("\r\n", "")
    cards = {card.contents["x-crm-id"][0].value: card for card in vobject.readComponents(text)}
    emma = cards[str(records["emma"])]
    assert emma.fn.value == "Émma Zoë; Müller"
    assert emma.n.value.family == "Zoë; Müller" and emma.n.value.given == "Émma"
    assert emma.org.value == ["Seller's Co"]
    assert emma.title.value == LONG_TITLE  # folded over several lines, unfolded by vobject
    emails = [(line.value, line.params["TYPE"]) for line in emma.contents["email"]]
    assert emails == [("emma@own.example", ["INTERNET", "WORK"]),
                      ("emma@home.example", ["INTERNET", "HOME"])]
    assert [line.value for line in emma.contents["tel"]] == ["+49 30 555", "030 666"]
    assert "uid" not in emma.contents
    assert cards[str(records["max"])].uid.value == "ERP-7"


def test_only_contacts_export_as_vcards(crm, records):
    with pytest.raises(ExportError) as raised:
        prepare_export(crm, "customers", "vcf")
    assert raised.value.field == "format"
    with pytest.raises(ExportError, match="no export 'planets'"):
        prepare_export(crm, "planets")


# -- streaming ------------------------------------------------------------------------------------


def test_exports_stream_in_batches_with_the_children_of_each(crm, records, people):
    with crm.unit_of_work(source="test") as uow:
        batch = contacts.bulk_create(uow, [
            {"customer_id": records["own"] if i % 3 else records["other"],
             "last_name": f"Bulk {i:02}",
             "emails": [{"email": f"b{i}@x.example"}] + ([{"email": f"c{i}@x.example",
                                                           "label": "home"}] if i % 2 else []),
             "phones": [{"number": f"030 {i:04}"}] if i % 4 else []}
            for i in range(23)
        ])
    assert not batch.errors
    whole = _text(crm, "contacts")
    export = prepare_export(crm, "contacts", "csv", batch_size=5)
    stream = export.stream()
    first = next(stream)
    assert len(_csv(first)) == 5  # the first chunk is sent before the rest is read
    chunks = [first, *stream]
    assert len(chunks) == 6 and "".join(chunks) == whole and export.rows == 26
    rows = _csv(whole)
    bulk = [row for row in rows if row["last_name"].startswith("Bulk")]
    for row in bulk:
        i = int(row["last_name"].split()[1])
        assert row["emails"] == f"b{i}@x.example" + (f"; c{i}@x.example" if i % 2 else "")
        assert row["phones"] == (f"030 {i:04}" if i % 4 else "")
    assert "".join(prepare_export(crm, "contacts", "jsonl", batch_size=4).stream()) == _text(
        crm, "contacts", "jsonl"
    )
    # The seller's contacts are spread over the ids: their children are fetched by id.
    seller = people["seller"]
    small = _csv(_text(crm, "contacts", actor=seller, batch_size=3))
    large = _csv(_text(crm, "contacts", actor=seller))
    assert small == large and len(small) == 17


# -- visibility and permissions -------------------------------------------------------------------


def test_an_export_holds_only_what_the_actor_may_see(crm, records, people):
    seller = people["seller"]
    ids = {int(row["id"]) for row in _csv(_text(crm, "contacts", actor=seller))}
    assert ids == {records["emma"], records["lone"]}
    ids = {int(row["id"]) for row in _csv(_text(crm, "customers", actor=seller))}
    assert ids == {records["own"]}
    ids = {record["id"] for record in _jsonl(_text(crm, "interactions", "jsonl", actor=seller))}
    assert ids == {records["call"]}
    assert _text(crm, "contacts", "vcf", actor=seller).count("BEGIN:VCARD") == 2
    with pytest.raises(PermissionDenied, match=r"contact\.view"):
        prepare_export(crm, "contacts", actor=people["nobody"])


# -- plugins --------------------------------------------------------------------------------------


@pytest.mark.plugins("crm_testplugin")
def test_a_plugins_model_exporter_applies_its_visibility(crm, records, people):
    seller = make_user(crm, "tasks@export.example", [*VIEW, "testplugin.task.view"],
                       visibility="own")
    with crm.unit_of_work(source="test") as uow:
        mine = customers.create(uow, {"name": "Mine", "owner_id": seller.id})
    everything = _csv(_text(crm, "testplugin_tasks"))
    assert list(everything[0]) == ["id", "customer_id", "title", "created_at"]
    assert {row["title"] for row in everything} >= {"Welcome Mine", "Welcome Seller's Co"}
    visible = _jsonl(_text(crm, "testplugin_tasks", "jsonl", actor=seller))
    assert [(task["customer_id"], task["title"]) for task in visible] == [(mine.id, "Welcome Mine")]
    dt.datetime.fromisoformat(visible[0]["created_at"])
    with pytest.raises(PermissionDenied):
        prepare_export(crm, "testplugin_tasks", actor=people["seller"])
    with pytest.raises(ExportError):
        prepare_export(crm, "testplugin_tasks", "vcf")


def _vip_query(actor: Any, include_archived: bool) -> Any:
    statement = select(Customer.id, Customer.name, Customer.archived).where(
        Customer.tag_rows.any(tag="vip")
    )
    if not include_archived:
        statement = statement.where(Customer.archived.is_(False))
    return statement.order_by(Customer.name)


VIP_PLUGIN = plugin_module(
    "crm_test_vip_export",
    crm_register_exporters=lambda: [Exporter("vips", "customer.view", query=_vip_query)],
)


class TestAQueryExporter:
    @pytest.fixture
    def crm_plugin_modules(self) -> list[Any]:
        return [VIP_PLUGIN]

    def test_its_statement_is_streamed_with_its_columns(self, crm, records):
        rows = _csv(_text(crm, "vips"))
        assert rows == [{"id": str(records["own"]), "name": "Seller's Co", "archived": "false"}]
        assert _jsonl(_text(crm, "vips", "jsonl")) == [
            {"id": records["own"], "name": "Seller's Co", "archived": False}
        ]


def test_a_plugin_may_not_take_a_core_export_name(crm):
    clash = plugin_module(
        "crm_test_clash",
        crm_register_exporters=lambda: [Exporter("contacts", "contact.view", model=Contact)],
    )
    crm.plugins.pm.register(clash, name="crm_test_clash")
    with pytest.raises(PluginError, match="'contacts', which is core's"):
        export_sources(crm)
    with pytest.raises(ValueError, match="either model or query"):
        Exporter("nothing", "contact.view")


# -- an import reads a CSV export back ------------------------------------------------------------


def test_a_contacts_csv_imports_back(crm, records):
    from crm_core.imports import ImportOptions, run_import

    data = _text(crm, "contacts").encode()
    before = _jsonl(_text(crm, "contacts", "jsonl"))
    # Into the same CRM, as copies: external ids are unique, so that column stays out (and
    # so does ``id``, which an import reads as the external id when nothing else is).
    options = ImportOptions(entity="contacts", match_on="none", on_match="create",
                            columns={"external_id": "", "id": ""})
    summary = run_import(crm, io.BytesIO(data), options)
    assert summary.created == 3 and summary.rejected == 0, summary.rejections
    after = _jsonl(_text(crm, "contacts", "jsonl"))
    copies = [record for record in after if record["id"] not in {r["id"] for r in before}]
    fields = ("customer_id", "first_name", "last_name", "job_title", "external_id",
              "owner_id", "consent_email", "attributes")
    for original in before:
        copy = next(c for c in copies if c["last_name"] == original["last_name"])
        for field in fields:
            assert copy[field] == (None if field == "external_id" else original[field]), field
        assert [e["email"] for e in copy["emails"]] == [e["email"] for e in original["emails"]]
        assert [p["number"] for p in copy["phones"]] == [p["number"] for p in original["phones"]]


# -- the command line -----------------------------------------------------------------------------


def test_crm_export_writes_files_and_standard_output(runner, crm, records, people, tmp_path):
    path = tmp_path / "contacts.csv"
    result = runner.invoke(args=["export", "contacts", "-o", str(path)])
    assert result.exit_code == 0, result.output
    assert "exported 3 contacts as csv" in result.output
    assert path.read_bytes().decode() == _text(crm, "contacts")
    assert [p.name for p in tmp_path.iterdir()] == ["contacts.csv"]  # no temporary left

    cards = tmp_path / "contacts.vcf"
    result = runner.invoke(args=["export", "contacts", "-o", str(cards), "--as",
                                 "SELLER@export.example"])
    assert result.exit_code == 0, result.output
    assert cards.read_text().count("BEGIN:VCARD") == 2

    result = runner.invoke(args=["export", "interactions", "--format", "jsonl",
                                 "--include-archived"])
    assert result.exit_code == 0, result.output
    assert result.stdout == _text(crm, "interactions", "jsonl", include_archived=True)
    excel = runner.invoke(args=["export", "customers", "--excel"])
    assert excel.stdout.startswith("\ufeff")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "planets"], "no export 'planets'"),
        (["export", "customers", "--format", "vcf"], "not 'vcf'"),
        (["export", "contacts", "--as", "ghost@example.com"], "no user"),
        (["export", "contacts", "--as", "nobody@export.example"], "contact.view"),
        (["export"], "name what to export"),
        (["export", "contacts", "--format", "jsonl", "--excel"], "CSV files only"),
    ],
)
def test_crm_export_explains_what_is_wrong(runner, records, people, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output


# -- the API --------------------------------------------------------------------------------------


@pytest.fixture
def seller_api(client: Any, crm: Any, people: dict[str, Any]) -> ApiClient:
    """The API as the seller, who sees their own records only."""
    return ApiClient(client, api_token(crm, people["seller"]))


def test_get_an_export_streams_an_attachment(api, crm, records):
    response = api.get("/exports/contacts.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="contacts.csv"'
    assert response.is_streamed
    assert response.get_data(as_text=True) == _text(crm, "contacts")
    cards = api.get("/exports/contacts.vcf")
    assert cards.status_code == 200 and cards.mimetype == "text/vcard"
    lines = api.get("/exports/interactions.jsonl", query_string={"include_archived": "true"})
    assert lines.mimetype == "application/jsonl"
    assert lines.get_data(as_text=True) == _text(crm, "interactions", "jsonl",
                                                  include_archived=True)
    excel = api.get("/exports/customers.csv", query_string={"excel": "true"})
    assert excel.get_data(as_text=True).startswith("\ufeff")


def test_an_api_export_holds_what_the_caller_may_see(seller_api, records):
    rows = _csv(seller_api.get("/exports/contacts.csv").get_data(as_text=True))
    assert {int(row["id"]) for row in rows} == {records["emma"], records["lone"]}
    listed = seller_api.get("/exports").get_json()["data"]
    assert [item["name"] for item in listed] == ["contacts", "customers", "interactions"]
    assert next(i for i in listed if i["name"] == "contacts")["formats"] == ["csv", "jsonl", "vcf"]


def test_api_export_errors_are_problems(client, crm, api, people):
    nobody = ApiClient(client, api_token(crm, people["nobody"]))
    forbidden = nobody.get("/exports/contacts.csv")
    assert forbidden.status_code == 403 and forbidden.mimetype == "application/problem+json"
    assert nobody.get("/exports").get_json()["data"][0]["name"] == "customers"
    missing = api.get("/exports/planets.csv")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    for path in ("/exports/customers.vcf", "/exports/contacts.xlsx"):
        refused = api.get(path)
        assert refused.status_code == 422, path
        assert "format" in refused.get_json()["errors"]
    bad = api.get("/exports/contacts.csv", query_string={"include_archived": "yes"})
    assert bad.status_code == 400 and "include_archived" in bad.get_json()["errors"]
    assert ApiClient(client, None).get("/exports/contacts.csv").status_code == 401
