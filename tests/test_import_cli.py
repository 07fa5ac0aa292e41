"""``crm import``: progress, summary, first rejected rows, reports, exit codes, saved mappings."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crm_core.models import Contact, Customer, ImportJob
from crm_core.testing import make_user

pytestmark = pytest.mark.plugins()


def count(crm, model) -> int:
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def people(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(
        "name,email,country\nAcme,info@acme.example,DE\nBad,nope,FR\nBeta,b@x.example,Germany\n",
        encoding="utf-8",
    )
    return path


def test_import_prints_a_summary_and_the_first_rejected_rows(runner, crm, people, tmp_path):
    result = runner.invoke(args=["import", "customers", str(people)])
    assert result.exit_code == 0, result.output
    assert "created 2, updated 0, skipped 0, rejected 1 of 3 rows" in result.stdout
    assert "rows/s" in result.stdout
    assert "line 3 email 'nope': Not a valid email address." in result.stdout
    assert "Importing people.csv" in result.stderr
    with crm.session_factory() as session:
        beta = session.scalars(select(Customer).where(Customer.name == "Beta")).one()
        assert beta.country == "DE"
        assert session.scalars(select(ImportJob)).one().status == "succeeded"
    # again, with a report and matching on email: updates
    report = tmp_path / "report.csv"
    again = runner.invoke(args=["import", "customers", str(people), "--report", str(report)])
    assert again.exit_code == 0 and "created 0, updated 2" in again.stdout
    assert report.read_text(encoding="utf-8-sig").splitlines() == [
        "line,column,value,reason",
        "3,email,nope,Not a valid email address.",
    ]
    skipped = runner.invoke(args=["import", "customers", str(people), "--on-match", "skip"])
    assert "skipped 2" in skipped.stdout
    assert count(crm, Customer) == 2


def test_dry_run_maps_and_vcards(runner, crm, tmp_path):
    sheet = tmp_path / "firms.tsv"
    sheet.write_text("Firma\tOrt\tEgal\nAcme\tBerlin\tx\n", encoding="utf-16")
    args = ["import", "customers", str(sheet), "--map", "Firma=name", "--map", "Ort=city",
            "--map", "Egal="]
    dry = runner.invoke(args=[*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run, nothing saved: would have created 1" in dry.stdout
    assert count(crm, Customer) == 0
    assert runner.invoke(args=args).exit_code == 0
    assert count(crm, Customer) == 1
    card = tmp_path / "ann.vcf"
    card.write_bytes(b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Lee;Ann\r\nEND:VCARD\r\n")
    imported = runner.invoke(args=["import", "contacts", str(card)])
    assert imported.exit_code == 0 and "created 1" in imported.stdout
    assert count(crm, Contact) == 1


def test_saved_mappings(runner, crm, tmp_path):
    saved = runner.invoke(
        args=["import", "save-mapping", "firms", "--entity", "customers", "--map", "Firma=name",
              "--delimiter", ";"]
    )
    assert saved.exit_code == 0, saved.output
    listed = runner.invoke(args=["import", "mappings"])
    assert "firms" in listed.stdout and "Firma=name" in listed.stdout
    sheet = tmp_path / "firms.csv"
    sheet.write_text("Firma;Ort\nAcme;Berlin\n", encoding="utf-8")
    used = runner.invoke(args=["import", "customers", str(sheet), "--mapping", "firms"])
    assert used.exit_code == 0 and "created 1" in used.stdout, used.output
    bad = runner.invoke(
        args=["import", "save-mapping", "x", "--entity", "customers", "--map", "A=nmae"]
    )
    assert bad.exit_code != 0 and "nmae" in bad.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["customers", "{missing}"], "no such file"),
        (["customers", "{xlsx}"], "use .csv"),
        (["customers", "{vcf}"], "vCard files hold contacts only"),
        (["customers", "{csv}", "--map", "Name=nmae"], "has no field 'nmae'"),
        (["customers", "{csv}", "--map", "broken"], "HEADER=FIELD"),
        (["customers", "{csv}", "--mapping", "nope"], "No saved mapping 'nope'"),
        (["customers", "{csv}", "--encoding", "klingon"], "unknown encoding"),
        (["customers", "{empty}"], "empty"),
        (["interactions", "{csv}"], "No column fills"),
        (["customers", "{csv}", "--as", "nobody@x.example"], "nobody@x.example"),
    ],
)
def test_errors_exit_non_zero_with_a_clear_message(runner, crm, tmp_path, args, message):
    files = {
        "missing": tmp_path / "missing.csv",
        "xlsx": tmp_path / "book.xlsx",
        "vcf": tmp_path / "card.vcf",
        "csv": tmp_path / "ok.csv",
        "empty": tmp_path / "empty.csv",
    }
    for key, path in files.items():
        if key != "missing":
            path.write_text("Name\nAcme\n" if key != "empty" else "", encoding="utf-8")
    result = runner.invoke(args=["import", *(a.format(**files) for a in args)])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert count(crm, Customer) == 0


def test_acting_as_a_user_checks_their_permissions(runner, crm, people):
    make_user(crm, "viewer@x.example", ["customer.view"])
    refused = runner.invoke(args=["import", "customers", str(people), "--as", "viewer@x.example"])
    assert refused.exit_code != 0 and "customer.edit" in refused.output
    clerk = make_user(crm, "clerk@x.example", ["customer.view", "customer.edit"])
    done = runner.invoke(args=["import", "customers", str(people), "--as", "clerk@x.example"])
    assert done.exit_code == 0, done.output
    with crm.session_factory() as session:
        owners = set(session.scalars(select(Customer.owner_id)))
    assert owners == {clerk.id}


def test_several_files_are_imported_one_after_the_other(runner, crm, tmp_path):
    cards = []
    for name in ("ann", "bob"):
        card = tmp_path / f"{name}.vcf"
        card.write_bytes(
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nN:{name.title()};X\r\nEND:VCARD\r\n"
            "BEGIN:VCARD\r\nVERSION:3.0\r\nEND:VCARD\r\n".encode()
        )
        cards.append(str(card))
    report = tmp_path / "rejected.csv"
    result = runner.invoke(args=["import", "contacts", *cards, "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("created 1, updated 0, skipped 0, rejected 1 of 2 rows") == 2
    assert count(crm, Contact) == 2
    assert count(crm, ImportJob) == 2
    for name in ("ann", "bob"):
        lines = (tmp_path / f"rejected-{name}.csv").read_text(encoding="utf-8-sig").splitlines()
        assert lines[0] == "line,column,value,reason" and lines[1].startswith("5,N,")
