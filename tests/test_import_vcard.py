"""vCard imports: every real .vcf of the corpus, broken cards reported by line, charsets decoded.

The corpus is ``vcards/`` of the ``real_world_data`` fixture (tests/conftest.py); a
missing corpus fails the tests.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_core.imports import ImportOptions, run_import
from crm_core.imports.vcard import VcardSource
from crm_core.models import Contact, ContactEmail
from crm_core.services import customers

pytestmark = pytest.mark.plugins()

#: Cards of the corpus refused, by file: the line of their BEGIN:VCARD. Checked by hand:
#: no N nor FN (android custom/im, John_Doe_ANDROID 1 and 6, radicale's "broken" cards),
#: phone numbers that are not ones ("1", "9", "BusinessPhone", "6101231234@pager..."),
#: an email that is not one (John_Doe_ANDROID 36), undecodable quoted-printable bytes
#: (John_Doe_ANDROID 71) and a card never closed (khard/unparsable).
REJECTED = {
    "android-vcard/v21_android_custom_prop.vcf": [1],
    "android-vcard/v21_im.vcf": [1],
    "android-vcard/v21_multiple_entry.vcf": [1, 12, 23],
    "android-vcard/v21_nest.vcf": [1],
    "android-vcard/v21_pref_handling.vcf": [1],
    "android-vcard/v21_x_param.vcf": [1],
    "android-vcard/v30_comma_separated.vcf": [1],
    "android-vcard/v30_multibyte_param.vcf": [1],
    "android-vcard/v30_pager.vcf": [1],
    "android-vcard/v40_sip.vcf": [1],
    "ez-vcard/John_Doe_ANDROID.vcf": [1, 6, 36, 71],
    "ez-vcard/outlook-2003.vcf": [1],
    "khard/unparsable.vcf": [1],
    "radicale/broken-vcard.vcf": [1],
    "radicale/broken-vcards.vcf": [1, 9],
    "radicale/broken-vcards2-no_uid.vcf": [10],
    "radicale/broken-vcards2.vcf": [10],
}


@pytest.fixture
def corpus(real_world_data: Path) -> Path:
    """The 105 vCard files of the real-world corpus."""
    folder = real_world_data / "vcards"
    if not folder.is_dir() or len(list(folder.rglob("*.vcf"))) != 105:
        pytest.fail(f"{folder} does not hold the 105 .vcf files")
    return folder


def vcf(crm, path_or_bytes, **options):
    file = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    return run_import(crm, file, ImportOptions(entity="contacts", format="vcf", **options))


def contact(crm, *where) -> Contact:
    with crm.session_factory() as session:
        return session.scalars(select(Contact).where(*where)).one()


def test_every_card_of_the_corpus_imports_or_is_reported(crm, corpus):
    folder = corpus
    cards = rejected = 0
    for path in sorted(folder.rglob("*.vcf")):
        name = path.relative_to(folder).as_posix()
        with path.open("rb") as stream:
            total = sum(1 for _card in VcardSource(stream).cards())
        summary = vcf(crm, path)
        lines = sorted({r.line for r in summary.rejections})
        assert lines == REJECTED.get(name, []), (name, summary.rejections)
        assert all(r.reason for r in summary.rejections)
        assert summary.processed_rows == total
        assert summary.created + summary.updated + summary.rejected == total, name
        cards += total
        rejected += summary.rejected
    assert (cards, rejected) == (128, 23)


def test_charsets_quoted_printable_and_folding(crm, corpus):
    folder = corpus
    vcf(crm, folder / "android-vcard/v21_japanese_1.vcf")  # Shift_JIS, CHARSET parameter
    assert contact(crm, Contact.last_name == "安藤ロイド").phones[0].number == "0300000000"
    vcf(crm, folder / "android-vcard/v30_japanese.vcf")  # Shift_JIS in a 3.0 card
    assert contact(crm, Contact.last_name == "伊能").first_name == "圭一"
    vcf(crm, folder / "radicale/vcard-quoted-printable1.vcf")  # QP soft line breaks, UTF-8
    assert contact(crm, Contact.external_id == "vcard-quoted-printable1").last_name == "黄"
    summary = vcf(crm, folder / "ez-vcard/John_Doe_IPHONE.vcf")  # CR CR LF, folded photo
    assert summary.created == 1
    iphone = contact(crm, Contact.last_name == "Doe", Contact.first_name == "John")
    assert iphone.emails[0].email == "john.doe@ibm.com" and len(iphone.phones) >= 2


def test_labels_titles_uids_and_the_company_by_name(crm, corpus):
    folder = corpus
    with crm.unit_of_work() as uow:
        abc = customers.create(uow, {"name": "ABC, Inc."})
    vcf(crm, folder / "vobject/vcard40_org.vcf")
    org = contact(crm, Contact.last_name == "Marketing")
    assert org.customer_id == abc.id and org.emails[0].email == "marketing@abc.example.com"
    vcf(crm, folder / "ez-vcard/gmail-single2.vcf")
    with crm.session_factory() as session:
        labels = session.execute(
            select(ContactEmail.label, ContactEmail.email).order_by(ContactEmail.position)
            .join(Contact).where(Contact.last_name == "Test")
        ).all()
    assert ("home", "homeemail@example.com") in labels and len(labels) == 5
    summary = vcf(crm, folder / "khard/joe.vcf")
    joe = contact(crm, Contact.last_name == "Citizen")
    assert joe.external_id and summary.created == 1
    assert vcf(crm, folder / "khard/joe.vcf").updated == 1  # same UID: updated, not doubled


def test_a_broken_card_between_good_ones(crm):
    data = (
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Good One\r\nEMAIL;TYPE=home:one@x.example\r\n"
        b"END:VCARD\r\n"
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nEMAIL:nameless@x.example\r\nEND:VCARD\r\n"
        b"BEGIN:VCARD\r\nVERSION:2.1\r\nN:Two;Good\r\nTEL;CELL:+44 20 7946 0000\r\n"
        b"PHOTO;ENCODING=BASE64;TYPE=JPEG:/9j/4AAQ\r\nnot-a-property-line\r\n\r\nEND:VCARD\r\n"
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Open Ended\r\n"
    )
    summary = vcf(crm, data)
    assert summary.created == 2
    assert [(r.line, r.column) for r in summary.rejections] == [(6, "N"), (18, "")]
    assert "END:VCARD" in summary.rejections[1].reason
    two = contact(crm, Contact.last_name == "Two")
    assert [(p.label, p.number) for p in two.phones] == [("mobile", "+44 20 7946 0000")]
    assert contact(crm, Contact.last_name == "One").emails[0].label == "home"
