"""crm_core.demo: realistic, seeded demo data written through the service layer."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import func, select

from crm_core.demo import DEMO_EMAIL, DemoError, count_customers, generate_demo_data
from crm_core.models import (
    CORE_CHANNELS,
    AuditEntry,
    Contact,
    Customer,
    Interaction,
    OutboxEvent,
    User,
)
from crm_core.services import customers

NOW = dt.datetime(2026, 3, 18, 15, 30, tzinfo=dt.UTC)


@pytest.fixture
def summary(crm):
    """20 customers with one month of interactions, in the test's transaction."""
    return generate_demo_data(crm, customers=20, months=1, seed=7, now=NOW, batch_size=8)


def test_summary_counts_match_the_database(crm, summary):
    with crm.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 20
        assert session.scalar(select(func.count()).select_from(Contact)) == summary.contacts
        assert (
            session.scalar(select(func.count()).select_from(Interaction)) == summary.interactions
        )
        assert session.scalar(select(func.count()).select_from(User)) == summary.users == 4
    assert summary.customers == 20
    assert summary.contacts >= 10
    assert summary.interactions >= 20
    assert sum(summary.channels.values()) == summary.interactions


def test_writes_go_through_the_services_with_audit_and_events(crm, summary):
    with crm.session_factory() as session:
        audited = dict(
            session.execute(
                select(AuditEntry.entity, func.count())
                .where(AuditEntry.action == "created", AuditEntry.source == "demo")
                .group_by(AuditEntry.entity)
            ).all()
        )
        events = session.scalar(
            select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.type == "interaction.created"
            )
        )
    assert audited["customer"] == 20
    assert audited["contact"] == summary.contacts
    assert audited["interaction"] == summary.interactions
    assert audited["user"] == 4
    assert events == summary.interactions


def test_demo_password_signs_in_and_users_have_roles(crm, summary):
    with crm.session_factory() as session:
        demo = session.scalar(select(User).where(User.email == DEMO_EMAIL))
        sales = list(session.scalars(select(User).where(User.email.in_(summary.sales_emails))))
    assert demo is not None
    assert len(summary.demo_password) >= 12
    assert demo.check_password(summary.demo_password)
    assert not demo.check_password(summary.demo_password + "x")
    assert [role.name for role in demo.roles] == ["admin"]
    assert len(sales) == 3
    for user in sales:
        assert [role.name for role in user.roles] == ["sales"]
        assert user.check_password(summary.demo_password)


def test_customers_are_complete_and_owned_by_sales_users(crm, summary):
    with crm.session_factory() as session:
        rows = list(session.scalars(select(Customer)))
        sales_ids = set(
            session.scalars(select(User.id).where(User.email.in_(summary.sales_emails)))
        )
        contacts_per_customer = Counter(session.scalars(select(Contact.customer_id)))
    kinds = Counter(row.kind for row in rows)
    assert kinds["company"] > 0
    assert kinds["person"] > 0
    for row in rows:
        assert row.name and row.street and row.city and row.postal_code
        assert row.country is not None and len(row.country) == 2
        assert row.email is not None and "@" in row.email
        assert row.lifecycle_stage in ("lead", "prospect", "customer", "former")
        assert row.owner_id is None or row.owner_id in sales_ids
        if row.kind == "company":
            assert row.industry
            assert row.website is not None and row.website.startswith("https://www.")
            assert 1 <= contacts_per_customer[row.id] <= 5
        else:
            assert contacts_per_customer[row.id] == 0
    assert sum(1 for row in rows if row.owner_id is not None) >= 15
    assert len({row.country for row in rows}) >= 3
    assert any(row.tags for row in rows)


def test_contacts_have_labelled_emails_at_their_company(crm, summary):
    with crm.session_factory() as session:
        pairs = session.execute(select(Contact, Customer).join(Customer)).all()
    assert pairs
    for contact, customer in pairs:
        assert contact.first_name and contact.last_name and contact.job_title
        assert contact.emails[0].label == "work"
        domain = customer.website.removeprefix("https://www.")
        assert contact.emails[0].email.endswith("@" + domain)
        assert contact.phones and contact.phones[0].label == "work"
        assert contact.owner_id == customer.owner_id
        assert (contact.consent_email_at is not None) == contact.consent_email
    assert {phone.label for contact, _ in pairs for phone in contact.phones} == {"work", "mobile"}
    consents = Counter(contact.consent_email for contact, _ in pairs)
    assert consents[True] and consents[False]


def test_interactions_belong_to_their_customer_and_fit_the_window(crm, summary):
    start = NOW - dt.timedelta(days=30.44)
    with crm.session_factory() as session:
        customer_ids = set(session.scalars(select(Customer.id)))
        contact_customer = dict(session.execute(select(Contact.id, Contact.customer_id)).all())
        user_ids = set(session.scalars(select(User.id)))
        rows = list(session.scalars(select(Interaction)))
    assert len(rows) == summary.interactions
    for row in rows:
        assert row.customer_id in customer_ids
        if row.contact_id is not None:
            assert contact_customer[row.contact_id] == row.customer_id
        assert row.user_id is None or row.user_id in user_ids
        assert row.occurred_at.tzinfo is not None
        assert start - dt.timedelta(minutes=1) <= row.occurred_at <= NOW
        assert row.subject
        assert row.source == "demo"
        if row.channel in ("note", "web", "purchase"):
            assert row.direction is None
        else:
            assert row.direction in ("in", "out")
    moments = sorted(row.occurred_at for row in rows)
    assert moments[-1] - moments[0] > dt.timedelta(days=14)


def test_channels_are_spread_and_texts_fit_them(crm, summary):
    with crm.session_factory() as session:
        rows = list(session.scalars(select(Interaction)))
    channels = Counter(row.channel for row in rows)
    assert set(channels) <= set(CORE_CHANNELS)
    assert len(channels) >= 6
    assert max(channels.values()) < len(rows) / 2
    assert dict(sorted(channels.items())) == summary.channels
    for row in rows:
        if row.channel == "purchase":
            assert row.external_ref is not None and row.external_ref.startswith("ORD-")
            assert row.subject.startswith(f"Order {row.external_ref}:")
        elif row.channel == "ticket":
            assert row.external_ref is not None and row.external_ref.startswith("TCK-")
            assert row.subject.startswith(f"Ticket #{row.external_ref.removeprefix('TCK-')}:")
        elif row.channel == "sms" and row.direction == "out":
            assert row.subject == "Appointment reminder"


def test_every_core_channel_appears_in_a_larger_demo(crm):
    summary = generate_demo_data(crm, customers=80, months=3, seed=3, now=NOW)
    assert set(summary.channels) == set(CORE_CHANNELS)


def test_same_seed_same_data(crm):
    connection = crm.session_factory.kw["bind"]

    def names(seed: int) -> list[str]:
        savepoint = connection.begin_nested()
        try:
            generate_demo_data(crm, customers=6, months=1, seed=seed, now=NOW)
            with crm.session_factory() as session:
                return list(session.scalars(select(Customer.name).order_by(Customer.id)))
        finally:
            savepoint.rollback()

    first = names(11)
    assert names(11) == first
    assert names(12) != first


def test_progress_is_reported_per_batch(crm):
    seen: list[int] = []
    generate_demo_data(crm, customers=7, months=1, seed=1, now=NOW, batch_size=3,
                       progress=seen.append)
    assert seen == [3, 3, 1]
    assert count_customers(crm) == 7


def test_refuses_a_database_with_customers(crm):
    with crm.unit_of_work(source="test") as uow:
        customers.create(uow, {"name": "Real Customer Ltd"})
    with pytest.raises(DemoError, match="already holds 1 customers"):
        generate_demo_data(crm, customers=3, months=1)
    assert count_customers(crm) == 1


def test_rejects_a_naive_now(crm):
    with pytest.raises(DemoError, match="timezone-aware"):
        generate_demo_data(crm, customers=1, now=dt.datetime(2026, 1, 1))
    assert count_customers(crm) == 0
