"""Core's own resources: customers, contacts and interactions."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import ColumnElement, select, true

from crm_core.models import Contact, ContactEmail, Customer, CustomerTag, Interaction
from crm_core.search import list_filter
from crm_core.services import contacts, customers, interactions
from crm_core.web.api.resource import ApiResource


def _tagged(tag: str) -> ColumnElement[bool]:
    return Customer.id.in_(select(CustomerTag.customer_id).where(CustomerTag.tag == tag))


def _contact_email(email: str) -> ColumnElement[bool]:
    wanted = email.strip().lower()
    return Contact.id.in_(select(ContactEmail.contact_id).where(ContactEmail.email == wanted))


def _customer_search(text: str) -> ColumnElement[bool]:
    """Search text: each word starts a word of name, email, phone or city; or exact email/phone."""
    return _matching("customer", text)


def _contact_search(text: str) -> ColumnElement[bool]:
    """Search text: each word starts a word of name, emails, phones, company; or email/phone."""
    return _matching("contact", text)


def _matching(entity: str, text: str) -> ColumnElement[bool]:
    if not text.strip():
        return true()
    crm = current_app.extensions["crm"]
    with crm.session_factory() as session:
        return list_filter(session, entity, text, region=crm.settings.default_phone_region)


def core_resources() -> list[ApiResource]:
    """The resources every crm-core installation serves."""
    return [
        ApiResource(
            name="customers",
            entity="customer",
            model=Customer,
            service=customers,
            filters={
                "owner_id": Customer.owner_id,
                "lifecycle_stage": Customer.lifecycle_stage,
                "email": lambda value: Customer.email == value.strip().lower(),
                "phone": Customer.phone,
                "tag": _tagged,
                "q": _customer_search,
            },
            sorts={"name": Customer.name},
            default_sort="name",
            description="Companies and people the business sells to or serves.",
        ),
        ApiResource(
            name="contacts",
            entity="contact",
            model=Contact,
            service=contacts,
            filters={
                "customer_id": Contact.customer_id,
                "owner_id": Contact.owner_id,
                "email": _contact_email,
                "q": _contact_search,
            },
            sorts={"last_name": Contact.last_name},
            default_sort="last_name",
            description="People, usually at a customer, with labelled emails and phones.",
        ),
        ApiResource(
            name="interactions",
            entity="interaction",
            model=Interaction,
            service=interactions,
            filters={
                "customer_id": Interaction.customer_id,
                "contact_id": Interaction.contact_id,
                "user_id": Interaction.user_id,
                "channel": Interaction.channel,
                "source": Interaction.source,
            },
            sorts={"occurred_at": Interaction.occurred_at},
            default_sort="-occurred_at",
            description="Every touchpoint with a customer: calls, mails, meetings, purchases...",
        ),
    ]
