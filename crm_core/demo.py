"""Realistic demo data, written through the service layer's bulk path.

:func:`generate_demo_data` fills an empty CRM with companies and people from several
countries, their contacts (labelled emails and phone numbers, consent), months of
interactions on every channel at plausible local times, a demo admin and a few sales
users who own the records. The same ``seed`` gives the same data (except the demo
password, which is random and returned in the :class:`DemoSummary`).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import secrets
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from faker import Faker
from sqlalchemy import func, select

from crm_core import services
from crm_core.db import utcnow
from crm_core.errors import CRMError
from crm_core.models import Customer, User
from crm_core.runtime import CRM
from crm_core.services.unit_of_work import UnitOfWork

DEMO_EMAIL = "demo@example.com"
SOURCE = "demo"


class DemoError(CRMError):
    """The demo data cannot be generated (the database is not empty, or a row was refused)."""


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate_demo_data` created, and how to sign in."""

    customers: int
    contacts: int
    interactions: int
    users: int
    demo_email: str
    demo_password: str
    sales_emails: tuple[str, ...] = ()
    channels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Country:
    code: str
    locale: str
    weight: int
    tld: str
    currency: str
    zones: tuple[str, ...]


COUNTRIES = (
    _Country(
        "US",
        "en_US",
        30,
        "com",
        "USD",
        ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"),
    ),
    _Country("GB", "en_GB", 15, "co.uk", "GBP", ("Europe/London",)),
    _Country("DE", "de_DE", 20, "de", "EUR", ("Europe/Berlin",)),
    _Country("FR", "fr_FR", 10, "fr", "EUR", ("Europe/Paris",)),
    _Country("NL", "nl_NL", 7, "nl", "EUR", ("Europe/Amsterdam",)),
    _Country("ES", "es_ES", 6, "es", "EUR", ("Europe/Madrid",)),
    _Country("IT", "it_IT", 6, "it", "EUR", ("Europe/Rome",)),
    _Country("AT", "de_AT", 3, "at", "EUR", ("Europe/Vienna",)),
    _Country("CH", "de_CH", 3, "ch", "CHF", ("Europe/Zurich",)),
)

INDUSTRIES = (
    "Manufacturing",
    "Retail",
    "Wholesale",
    "Software",
    "IT services",
    "Logistics",
    "Construction",
    "Healthcare",
    "Hospitality",
    "Financial services",
    "Legal services",
    "Education",
    "Energy",
    "Agriculture",
    "Automotive",
    "Media",
    "Real estate",
    "Public sector",
    "Non-profit",
    "Consulting",
)
STAGES = ("lead", "prospect", "customer", "former")
STAGE_WEIGHTS = (30, 25, 35, 10)
TAGS = (
    "newsletter",
    "vip",
    "partner",
    "reseller",
    "referral",
    "trade-fair",
    "webinar",
    "key-account",
    "public-tender",
    "churn-risk",
    "upsell",
    "payment-terms-60d",
)
JOB_TITLES = (
    "Head of Purchasing",
    "Procurement Manager",
    "IT Manager",
    "CFO",
    "Office Manager",
    "Sales Director",
    "Marketing Manager",
    "Operations Manager",
    "Project Manager",
    "Head of HR",
    "Accountant",
    "Assistant to the Managing Director",
    "CTO",
    "Buyer",
    "Facility Manager",
    "Team Lead Customer Service",
)
DECISION_MAKERS = ("CEO", "Managing Director", "Owner", "General Manager")
PRODUCTS = (
    ("Starter plan", 49),
    ("Business plan", 149),
    ("Enterprise plan", 990),
    ("Onboarding workshop", 1200),
    ("Support package", 390),
    ("Data migration", 2400),
    ("API add-on", 99),
    ("Training day", 850),
    ("Hardware kit", 640),
    ("Extra seats (10)", 290),
)
TOPICS = (
    "pricing",
    "the renewal",
    "the rollout plan",
    "data migration",
    "user training",
    "the integration with their ERP",
    "an upgrade to the Business plan",
    "delivery dates",
    "the open invoice",
    "their budget for next quarter",
    "a pilot project",
    "support hours",
)
OUTCOMES = (
    "They are interested and want a written offer",
    "Decision expected by the end of the month",
    "They need approval from management first",
    "Agreed to a follow-up meeting",
    "No budget this quarter, call again later",
    "Very positive, asked for references",
    "Concerned about the price, comparing with a competitor",
    "All questions answered",
)
NEXT_STEPS = (
    "send the quote",
    "schedule a demo",
    "call back in two weeks",
    "send references",
    "prepare the contract",
    "invite to the webinar",
    "involve a technician",
)
PROBLEMS = (
    "cannot log in",
    "export to CSV fails",
    "invoice address is wrong",
    "synchronisation stopped",
    "slow search results",
    "password reset mail not arriving",
    "wrong VAT rate on invoice",
    "printer integration not working",
    "missing delivery",
)
WEB_EVENTS = (
    ("Visited the pricing page", "Viewed /pricing for {minutes} minutes, then /features."),
    ("Downloaded a whitepaper", "Downloaded 'CRM best practices for {industry}'."),
    ("Signed up for the newsletter", "Double opt-in confirmed."),
    (
        "Requested a demo via the website",
        "Web form: 'We are {size} people, interested in {product}.'",
    ),
    ("Registered for a webinar", "Webinar: 'Getting more out of {product}'."),
)

#: Relative frequency of each channel per lifecycle stage (every channel occurs).
CHANNEL_WEIGHTS: dict[str, dict[str, float]] = {
    "lead": {
        "web": 4,
        "email": 3,
        "call": 2,
        "chat": 1.5,
        "note": 1,
        "meeting": 0.5,
        "sms": 0.2,
        "letter": 0.2,
    },
    "prospect": {
        "email": 4,
        "call": 3,
        "meeting": 2,
        "note": 2,
        "web": 1,
        "chat": 1,
        "letter": 0.5,
        "sms": 0.5,
    },
    "customer": {
        "email": 4,
        "call": 2,
        "meeting": 1,
        "note": 1,
        "purchase": 2.5,
        "ticket": 1.5,
        "chat": 1,
        "sms": 0.5,
        "letter": 0.5,
        "web": 1,
    },
    "former": {"email": 2, "call": 1, "ticket": 1.5, "purchase": 1, "letter": 1, "note": 1},
}
#: Interactions per month a customer in each stage gets, as a (low, high) range.
MONTHLY_RATE = {
    "lead": (0.4, 1.5),
    "prospect": (1.0, 3.0),
    "customer": (1.5, 4.0),
    "former": (0.3, 1.0),
}
#: Share of interactions we start ("out"); ``None``: the channel has no direction.
OUTBOUND_SHARE: dict[str, float | None] = {
    "call": 0.55,
    "email": 0.5,
    "meeting": 0.8,
    "letter": 0.7,
    "chat": 0.2,
    "sms": 0.85,
    "ticket": 0.05,
    "note": None,
    "web": None,
    "purchase": None,
}
#: Channels that happen at any time of day and week (the customer's doing).
ANY_TIME = frozenset({"web", "purchase", "chat"})

Progress = Callable[[int], None]


def count_customers(crm: CRM) -> int:
    """How many customers the CRM's database holds."""
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).select_from(Customer)) or 0


def generate_demo_data(
    crm: CRM,
    *,
    customers: int = 200,
    months: int = 6,
    seed: int = 42,
    now: dt.datetime | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> DemoSummary:
    """Fill an empty, migrated CRM with demo data; raise :class:`DemoError` if it has customers.

    Interactions fall between ``now - months`` and ``now``. Rows are written with
    ``bulk_create`` in batches of ``batch_size`` (default: the ``bulk_batch_size``
    setting), one unit of work per batch of customers with their contacts and
    interactions. ``progress`` is called with the number of customers each batch wrote.
    """
    if customers < 0 or months < 1:
        raise DemoError("give at least 0 customers and 1 month")
    existing = count_customers(crm)
    if existing:
        raise DemoError(
            f"the database already holds {existing} customers; demo data goes into an empty "
            "database only (crm demo --reset replaces everything)"
        )
    generator = _Generator(seed, now or utcnow(), months)
    size = batch_size or crm.settings.bulk_batch_size
    password = secrets.token_urlsafe(12)
    with crm.unit_of_work(source=SOURCE) as uow:
        staff = generator.create_users(uow, password)
    counts = {"customers": 0, "contacts": 0, "interactions": 0}
    channels: dict[str, int] = {}
    for start in range(0, customers, size):
        chunk = min(size, customers - start)
        with crm.unit_of_work(source=SOURCE) as uow:
            written = generator.write_batch(uow, chunk, [user.id for user in staff[1:]], size)
        for key in counts:
            counts[key] += written[key]
        for channel, number in written["channels"].items():
            channels[channel] = channels.get(channel, 0) + number
        if progress is not None:
            progress(chunk)
    return DemoSummary(
        customers=counts["customers"],
        contacts=counts["contacts"],
        interactions=counts["interactions"],
        users=len(staff),
        demo_email=DEMO_EMAIL,
        demo_password=password,
        sales_emails=tuple(user.email for user in staff[1:]),
        channels=dict(sorted(channels.items())),
    )


def customer_rows(
    count: int, *, seed: int = 42, owner_ids: Sequence[int | None] = (None,)
) -> list[dict[str, Any]]:
    """``count`` realistic customer rows, as ``customers.bulk_create`` takes them.

    No database is needed: benchmarks and tests use it to prepare input.
    ``owner_ids`` are picked from at random (leads are sometimes left unowned).
    """
    generator = _Generator(seed, utcnow(), 1)
    return [generator.customer(owner_ids).row for _ in range(count)]


@dataclass
class _Plan:
    """A generated customer row and what its contacts and interactions need to know."""

    row: dict[str, Any]
    country: _Country
    domain: str | None
    zone: ZoneInfo


class _Generator:
    """Seeded row factories; one per :func:`generate_demo_data` run."""

    def __init__(self, seed: int, now: dt.datetime, months: int) -> None:
        if now.tzinfo is None:
            raise DemoError("now must be timezone-aware")
        self.rng = random.Random(seed)
        self.fakers: dict[str, Faker] = {}
        for position, country in enumerate(COUNTRIES):
            faker = Faker(country.locale)
            faker.seed_instance(seed * 100 + position)
            self.fakers[country.locale] = faker
        self.now = now
        self.start = now - dt.timedelta(days=round(months * 30.44))
        self.months = months
        self.order_number = 100000
        self.ticket_number = 5000

    # -- users ----------------------------------------------------------------------

    def create_users(self, uow: UnitOfWork, password: str) -> list[User]:
        """The demo admin first, then three sales users (same password, for trying roles)."""
        taken = uow.session.scalar(select(User.id).where(User.email == DEMO_EMAIL))
        if taken is not None:
            raise DemoError(f"a user {DEMO_EMAIL} exists already (crm demo --reset starts over)")
        services.users.ensure_default_roles(uow)
        staff = [
            services.users.create(
                uow,
                {
                    "email": DEMO_EMAIL,
                    "name": "Demo Admin",
                    "password": password,
                    "roles": ["admin"],
                },
            )
        ]
        faker = self.fakers["en_US"]
        seen = {DEMO_EMAIL}
        while len(staff) < 4:
            first, last = faker.first_name(), faker.last_name()
            email = f"{_slug(first, '')}.{_slug(last, '')}@example.com"
            if email in seen:
                continue
            seen.add(email)
            staff.append(
                services.users.create(
                    uow,
                    {
                        "email": email,
                        "name": f"{first} {last}",
                        "password": password,
                        "roles": ["sales"],
                    },
                )
            )
        return staff

    # -- one batch ------------------------------------------------------------------

    def write_batch(
        self, uow: UnitOfWork, count: int, owner_ids: Sequence[int], size: int
    ) -> dict[str, Any]:
        """Create ``count`` customers with their contacts and interactions."""
        plans = [self.customer(owner_ids) for _ in range(count)]
        rows = [plan.row for plan in plans]
        created = _bulk(services.customers.bulk_create, uow, rows, "customer")
        contact_rows: list[dict[str, Any]] = []
        owners_of_contacts: list[int] = []
        for position, (plan, record) in enumerate(zip(plans, created, strict=True)):
            if plan.row["kind"] == "company":
                for number in range(self._contact_count()):
                    contact_rows.append(self.contact(plan, record.id, number))
                    owners_of_contacts.append(position)
        contact_records: list[Any] = []
        for start in range(0, len(contact_rows), size):
            contact_records += _bulk(
                services.contacts.bulk_create, uow, contact_rows[start : start + size], "contact"
            )
        contacts_by_customer: dict[int, list[Any]] = {}
        for position, record in zip(owners_of_contacts, contact_records, strict=True):
            contacts_by_customer.setdefault(position, []).append(record)
        interaction_rows = [
            row
            for position, (plan, record) in enumerate(zip(plans, created, strict=True))
            for row in self.interactions(plan, record.id, contacts_by_customer.get(position, []))
        ]
        interaction_rows.sort(key=lambda row: row["occurred_at"])
        for start in range(0, len(interaction_rows), size):
            batch = interaction_rows[start : start + size]
            _bulk(services.interactions.bulk_create, uow, batch, "interaction")
        channels: dict[str, int] = {}
        for row in interaction_rows:
            channels[row["channel"]] = channels.get(row["channel"], 0) + 1
        return {
            "customers": len(created),
            "contacts": len(contact_records),
            "interactions": len(interaction_rows),
            "channels": channels,
        }

    # -- customers ------------------------------------------------------------------

    def customer(self, owner_ids: Sequence[int | None]) -> _Plan:
        """One company (70 %) or person with an address in one of :data:`COUNTRIES`."""
        rng = self.rng
        country = rng.choices(COUNTRIES, weights=[c.weight for c in COUNTRIES])[0]
        faker = self.fakers[country.locale]
        stage = rng.choices(STAGES, weights=STAGE_WEIGHTS)[0]
        company = rng.random() < 0.7
        row: dict[str, Any] = {
            "kind": "company" if company else "person",
            "street": faker.street_address().replace("\n", ", "),
            "postal_code": faker.postcode(),
            "city": faker.city(),
            "region": faker.administrative_unit(),
            "country": country.code,
            "phone": faker.phone_number(),
            "lifecycle_stage": stage,
            "owner_id": None if stage == "lead" and rng.random() < 0.15 else rng.choice(owner_ids),
            "tags": self._tags(stage),
        }
        domain = None
        if company:
            name = faker.company()
            domain = f"{_slug(name.split(',')[0], 'company')}.{country.tld}"
            row.update(
                name=name,
                email=f"{rng.choice(('info', 'office', 'contact', 'hello', 'sales'))}@{domain}",
                website=f"https://www.{domain}",
                industry=rng.choice(INDUSTRIES),
            )
        else:
            first, last = faker.first_name(), faker.last_name()
            row.update(
                name=f"{first} {last}",
                email=f"{_slug(first, 'x')}.{_slug(last, 'y')}@{faker.free_email_domain()}",
                website=None,
                industry=None,
            )
        zone = ZoneInfo(rng.choice(country.zones))
        return _Plan(row=row, country=country, domain=domain, zone=zone)

    def _tags(self, stage: str) -> list[str]:
        rng = self.rng
        tags = set(rng.sample(TAGS, k=rng.choices((0, 1, 2, 3), weights=(35, 35, 20, 10))[0]))
        if stage == "customer" and rng.random() < 0.15:
            tags.add("vip")
        if stage == "former":
            tags.discard("upsell")
        return sorted(tags)

    # -- contacts -------------------------------------------------------------------

    def _contact_count(self) -> int:
        return self.rng.choices((1, 2, 3, 4, 5), weights=(25, 30, 20, 15, 10))[0]

    def contact(self, plan: _Plan, customer_id: int, number: int) -> dict[str, Any]:
        """A person at a company; the first one is its decision maker."""
        rng = self.rng
        faker = self.fakers[plan.country.locale]
        first, last = faker.first_name(), faker.last_name()
        work = f"{_slug(first, 'x')}.{_slug(last, 'y')}@{plan.domain}"
        emails = [{"label": "work", "email": work}]
        if rng.random() < 0.2:
            private = f"{_slug(first, 'x')}{rng.randint(1, 99)}@{faker.free_email_domain()}"
            emails.append({"label": "private", "email": private})
        phones = [{"label": "work", "number": faker.phone_number()}]
        if rng.random() < 0.6:
            phones.append({"label": "mobile", "number": faker.phone_number()})
        return {
            "customer_id": customer_id,
            "first_name": first,
            "last_name": last,
            "job_title": rng.choice(DECISION_MAKERS if number == 0 else JOB_TITLES),
            "owner_id": plan.row["owner_id"],
            "emails": emails,
            "phones": phones,
            "consent_email": rng.random() < 0.6,
            "consent_phone": rng.random() < 0.35,
        }

    # -- interactions ---------------------------------------------------------------

    def interactions(
        self, plan: _Plan, customer_id: int, people: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """The customer's touchpoints over its active part of the window."""
        rng = self.rng
        stage = plan.row["lifecycle_stage"]
        begin, end = self._active_span(stage)
        months = max((end - begin).days / 30.44, 0.25)
        low, high = MONTHLY_RATE[stage]
        count = max(1, round(rng.uniform(low, high) * months))
        weights = CHANNEL_WEIGHTS[stage]
        rows = []
        for _ in range(count):
            channel = rng.choices(list(weights), weights=list(weights.values()))[0]
            rows.append(self.interaction(plan, customer_id, people, channel, begin, end))
        return rows

    def _active_span(self, stage: str) -> tuple[dt.datetime, dt.datetime]:
        """When the customer was in touch: leads recently, former customers early on."""
        span = self.now - self.start
        if stage == "lead":
            return self.start + span * self.rng.uniform(0.3, 0.9), self.now
        if stage == "prospect":
            return self.start + span * self.rng.uniform(0.0, 0.5), self.now
        if stage == "former":
            return self.start, self.start + span * self.rng.uniform(0.3, 0.7)
        return self.start, self.now

    def interaction(
        self,
        plan: _Plan,
        customer_id: int,
        people: Sequence[Any],
        channel: str,
        begin: dt.datetime,
        end: dt.datetime,
    ) -> dict[str, Any]:
        """One interaction on ``channel`` whose subject and body fit the channel."""
        rng = self.rng
        share = OUTBOUND_SHARE[channel]
        direction = None if share is None else ("out" if rng.random() < share else "in")
        person = rng.choice(people) if people and channel != "web" else None
        occurred_at = self._moment(plan.zone, channel, begin, end)
        external_ref = None
        if channel == "purchase":
            self.order_number += 1
            external_ref = f"ORD-{self.order_number}"
        elif channel == "ticket":
            self.ticket_number += 1
            external_ref = f"TCK-{self.ticket_number}"
        subject, body = self._text(plan, channel, direction, person, occurred_at)
        return {
            "customer_id": customer_id,
            "contact_id": person.id if person is not None else None,
            "channel": channel,
            "direction": direction,
            "occurred_at": occurred_at,
            "subject": subject,
            "body": body,
            "user_id": None if channel in ("web", "purchase") else plan.row["owner_id"],
            "external_ref": external_ref,
        }

    def _moment(
        self, zone: ZoneInfo, channel: str, begin: dt.datetime, end: dt.datetime
    ) -> dt.datetime:
        """A local time in ``[begin, end]``: office hours on weekdays, except web-like channels."""
        rng = self.rng
        for _ in range(20):
            instant = begin + (end - begin) * rng.random()
            day = instant.astimezone(zone).date()
            if channel in ANY_TIME:
                minute = rng.randint(7 * 60, 23 * 60 - 1)
            else:
                if day.weekday() >= 5:
                    day -= dt.timedelta(days=day.weekday() - 4)  # back to Friday
                minute = rng.choice((rng.randint(8 * 60, 12 * 60), rng.randint(13 * 60, 18 * 60)))
            local = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), tzinfo=zone)
            if begin <= local <= end:
                return local
        return end - dt.timedelta(minutes=rng.randint(1, 600))

    def _text(
        self,
        plan: _Plan,
        channel: str,
        direction: str | None,
        person: Any,
        when: dt.datetime,
    ) -> tuple[str, str]:
        rng = self.rng
        name = person.first_name if person is not None else plan.row["name"].split()[0]
        who = f"{person.first_name} {person.last_name}" if person is not None else plan.row["name"]
        topic, outcome, step = rng.choice(TOPICS), rng.choice(OUTCOMES), rng.choice(NEXT_STEPS)
        product, price = rng.choice(PRODUCTS)
        currency = plan.country.currency
        if channel == "call":
            if direction == "out":
                return (
                    f"Call about {topic}",
                    f"Called {who} about {topic}. {outcome}. Next step: {step}.",
                )
            return (
                f"Inbound call: question about {topic}",
                f"{who} called with a question about {topic}. {outcome}.",
            )
        if channel == "email":
            if direction == "out":
                subject = rng.choice(
                    (f"Your offer for the {product}", f"Re: {topic}", f"Follow-up: {topic}")
                )
                return (
                    subject,
                    f"Hello {name},\n\nthank you for your time. As discussed, "
                    f"here are the details on {topic}. The {product} is {price} {currency} "
                    "per unit.\n\nKind regards",
                )
            subject = rng.choice(
                (
                    f"Question about the {product}",
                    f"Re: Your offer for the {product}",
                    f"Invoice query ({topic})",
                )
            )
            return (
                subject,
                f"Hi,\n\ncould you tell us more about {topic}? {outcome}.\n\nBest,\n{who}",
            )
        if channel == "meeting":
            title = rng.choice(
                (
                    f"Product demo: {product}",
                    "Quarterly review",
                    f"Workshop on {topic}",
                    "Kick-off meeting",
                )
            )
            return (
                title,
                f"Participants: {who} and our account manager.\n"
                f"Discussed {topic}. {outcome}. Next step: {step}.",
            )
        if channel == "note":
            return (
                rng.choice(("Internal note", "Account note", "Reminder")),
                f"{who}: {outcome.lower()}. Remember to {step}.",
            )
        if channel == "letter":
            if direction == "out":
                return (
                    rng.choice(
                        (
                            "Contract documents",
                            "Annual price adjustment",
                            "Order confirmation by post",
                        )
                    ),
                    f"Sent by post to {plan.row['street']}, {plan.row['city']}.",
                )
            return ("Signed contract returned", f"Received the signed contract from {who}.")
        if channel == "chat":
            return (
                f"Website chat: {topic}",
                f"Visitor: Hello, I have a question about {topic}.\n"
                f"Agent: Happy to help! {outcome}.",
            )
        if channel == "sms":
            if direction == "out":
                return (
                    "Appointment reminder",
                    f"Reminder: our appointment on "
                    f"{when:%d %b} at {when:%H:%M}. Reply YES to confirm.",
                )
            return ("Reply to reminder", "YES, see you then.")
        if channel == "web":
            title, template = rng.choice(WEB_EVENTS)
            return title, template.format(
                minutes=rng.randint(2, 15),
                industry=plan.row.get("industry") or "small business",
                size=rng.choice((5, 12, 40, 150, 800)),
                product=product,
            )
        if channel == "purchase":
            quantity = rng.randint(1, 12)
            return (
                f"Order ORD-{self.order_number}: {quantity} x {product}",
                f"{quantity} x {product} at {price} {currency} = "
                f"{quantity * price:,} {currency}, paid by invoice.",
            )
        if channel == "ticket":
            problem = rng.choice(PROBLEMS)
            status = rng.choice(("solved", "solved", "waiting for customer", "open"))
            return (
                f"Ticket #{self.ticket_number}: {problem}",
                f"Reported by {who}: {problem}. Status: {status}.",
            )
        return channel.capitalize(), ""


def _bulk(
    create: Callable[[UnitOfWork, Sequence[dict[str, Any]]], Any],
    uow: UnitOfWork,
    rows: Sequence[dict[str, Any]],
    entity: str,
) -> list[Any]:
    """``create`` the rows; any refused row is a bug in the generator, so fail loudly."""
    if not rows:
        return []
    result = create(uow, rows)
    if result.errors:
        index, messages = next(iter(result.errors.items()))
        raise DemoError(
            f"{len(result.errors)} generated {entity} rows were refused, e.g. row {index} "
            f"{rows[index]!r}: {messages}"
        )
    return list(result.records)


def _slug(text: str, fallback: str) -> str:
    """``Müller & Söhne GmbH`` -> ``mueller-soehne-gmbh``-like ASCII for addresses."""
    text = text.lower().replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return slug[:40].strip("-") or fallback
