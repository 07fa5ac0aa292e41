"""The tables of crm-sales (all prefixed ``sales_``).

A *pipeline* is an ordered list of *stages*; each stage has a default win probability
and an outcome (``open``, ``won`` or ``lost``). An *opportunity* (a deal) sits in one
stage of one pipeline; every stay in a stage is a row of :class:`StageStay` (entered,
left, who moved it), so time in stage and stage-to-stage conversion are read off the
history. The opportunity's ``status`` mirrors its stage's outcome, so reports filter
open, won and lost deals by an indexed column.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core import Amount, Base, Currency, TimestampMixin, VersionedMixin, utcnow


class Outcome(enum.StrEnum):
    """What reaching a stage means for a deal."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class ActivityKind(enum.StrEnum):
    """What an activity is; completing a call or meeting logs it on the timeline."""

    CALL = "call"
    MEETING = "meeting"
    TODO = "todo"


class ContactRole(enum.StrEnum):
    """The part a contact plays in a deal."""

    DECISION_MAKER = "decision_maker"
    INFLUENCER = "influencer"
    CHAMPION = "champion"
    USER = "user"
    OTHER = "other"


class Pipeline(VersionedMixin, TimestampMixin, Base):
    """A sales process: new business, renewals... with its ordered stages."""

    __tablename__ = "sales_pipeline"
    __table_args__ = ({"info": {"hand_made_indexes": ("uq_sales_pipeline_name_lower",)}},)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    position: Mapped[int] = mapped_column(default=0)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    stages: Mapped[list[Stage]] = relationship(
        back_populates="pipeline", order_by="Stage.position", lazy="selectin"
    )


class Stage(Base):
    """One step of a pipeline, with the win probability a deal in it gets by default."""

    __tablename__ = "sales_stage"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "name"),
        Index("ix_sales_stage_pipeline_position", "pipeline_id", "position"),
        CheckConstraint("probability BETWEEN 0 AND 100", name="probability_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("sales_pipeline.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(default=0)
    probability: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(8), default=Outcome.OPEN.value)
    pipeline: Mapped[Pipeline] = relationship(back_populates="stages")


class LostReason(Base):
    """Why deals are lost (a list the sales admin keeps)."""

    __tablename__ = "sales_lost_reason"
    __table_args__ = ({"info": {"hand_made_indexes": ("uq_sales_lost_reason_name_lower",)}},)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Opportunity(VersionedMixin, TimestampMixin, Base):
    """A deal: a customer, an amount, a stage, an owner and an expected close date."""

    __tablename__ = "sales_opportunity"
    __table_args__ = (
        Index("ix_sales_opportunity_status_close", "status", "expected_close", "id"),
        Index("ix_sales_opportunity_owner_status_close", "owner_id", "status", "expected_close"),
        Index("ix_sales_opportunity_stage", "stage_id", "id"),
        Index("ix_sales_opportunity_customer", "customer_id", "status"),
        # The forecast reads open deals by expected close and won deals by close time
        # from these alone (covering: no table lookups per deal).
        Index("ix_sales_opportunity_forecast_open", "status", "expected_close", "archived",
              "owner_id", "currency", "amount", "probability", "committed", "stage_id"),
        Index("ix_sales_opportunity_status_closed", "status", "closed_at", "archived",
              "owner_id", "currency", "amount"),
        # The funnel reads the deals created on a few days at the edges of a range
        # (:mod:`crm_sales.services.funnel_store` has the whole days).
        Index("ix_sales_opportunity_pipeline_created", "pipeline_id", "created_at"),
        CheckConstraint(
            "probability IS NULL OR probability BETWEEN 0 AND 100", name="probability_range"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("sales_pipeline.id"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("sales_stage.id"))
    status: Mapped[str] = mapped_column(String(8), default=Outcome.OPEN.value)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    amount: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    currency: Mapped[str] = mapped_column(Currency, default="EUR")
    expected_close: Mapped[dt.date | None] = mapped_column(Date)
    #: Overrides the stage's default probability when set.
    probability: Mapped[int | None] = mapped_column(Integer)
    #: Counted in the committed forecast (the owner's commitment).
    committed: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(80), default="")
    next_step: Mapped[str] = mapped_column(String(300), default="")
    lost_reason_id: Mapped[int | None] = mapped_column(
        ForeignKey("sales_lost_reason.id", ondelete="SET NULL")
    )
    stage_entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    stage: Mapped[Stage] = relationship(lazy="joined")
    contacts: Mapped[list[OpportunityContact]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="OpportunityContact.contact_id"
    )
    lines: Mapped[list[OpportunityLine]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="OpportunityLine.position"
    )

    @property
    def effective_probability(self) -> int:
        """The probability used for the weighted forecast: the override, else the stage's."""
        return self.probability if self.probability is not None else self.stage.probability


class OpportunityContact(Base):
    """A contact's role in a deal (decision maker, influencer...)."""

    __tablename__ = "sales_opportunity_contact"

    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("sales_opportunity.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(40), default=ContactRole.OTHER.value)


class OpportunityLine(Base):
    """A product line of a deal: quantity, unit price and discount."""

    __tablename__ = "sales_opportunity_line"
    __table_args__ = (Index("ix_sales_opportunity_line_opportunity", "opportunity_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("sales_opportunity.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(default=0)
    product_id: Mapped[int | None] = mapped_column(
        ForeignKey("sales_product.id", ondelete="SET NULL"), index=True
    )
    description: Mapped[str] = mapped_column(String(300), default="")
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3), default=Decimal(1))
    unit_price: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    discount_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))

    @property
    def total(self) -> Decimal:
        """Quantity times unit price, less the discount."""
        gross = self.quantity * self.unit_price
        return (gross * (Decimal(100) - self.discount_percent) / Decimal(100)).quantize(
            Decimal("0.01")
        )


class StageStay(Base):
    """One stay of a deal in a stage: when it entered, when it left, who moved it there."""

    __tablename__ = "sales_stage_stay"
    __table_args__ = (
        Index("ix_sales_stage_stay_opportunity", "opportunity_id", "entered_at"),
        Index("ix_sales_stage_stay_stage_entered", "stage_id", "entered_at", "opportunity_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("sales_opportunity.id", ondelete="CASCADE")
    )
    stage_id: Mapped[int] = mapped_column(ForeignKey("sales_stage.id"))
    entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    left_at: Mapped[dt.datetime | None]
    moved_by: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))


class Product(TimestampMixin, Base):
    """An item of the catalogue with its list price."""

    __tablename__ = "sales_product"
    __table_args__ = ({"info": {"hand_made_indexes": ("uq_sales_product_code_lower",)}},)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    currency: Mapped[str] = mapped_column(Currency, default="EUR")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PriceList(TimestampMixin, Base):
    """Prices of some products for some customers (a currency, a market, a partner tier)."""

    __tablename__ = "sales_price_list"
    __table_args__ = ({"info": {"hand_made_indexes": ("uq_sales_price_list_name_lower",)}},)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    currency: Mapped[str] = mapped_column(Currency, default="EUR")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    items: Mapped[list[PriceListItem]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )


class PriceListItem(Base):
    """A product's price on a price list."""

    __tablename__ = "sales_price_list_item"

    price_list_id: Mapped[int] = mapped_column(
        ForeignKey("sales_price_list.id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[int] = mapped_column(
        ForeignKey("sales_product.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    unit_price: Mapped[Decimal] = mapped_column(Amount)


class Activity(VersionedMixin, TimestampMixin, Base):
    """A call, meeting or to-do with a due date and an assignee, linked to a customer,
    contact or deal; completing a call or meeting logs an interaction on the timeline."""

    __tablename__ = "sales_activity"
    __table_args__ = (
        Index("ix_sales_activity_assignee_open", "assignee_id", "done_at", "due_at"),
        Index("ix_sales_activity_opportunity", "opportunity_id", "due_at"),
        Index("ix_sales_activity_customer", "customer_id", "due_at"),
        # The reminder job: open reminders not sent yet, by time.
        Index("ix_sales_activity_reminder", "reminded_at", "reminder_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default=ActivityKind.TODO.value)
    subject: Mapped[str] = mapped_column(String(300))
    notes: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[dt.datetime]
    reminder_at: Mapped[dt.datetime | None]
    reminded_at: Mapped[dt.datetime | None]
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    opportunity_id: Mapped[int | None] = mapped_column(
        ForeignKey("sales_opportunity.id", ondelete="CASCADE")
    )
    done_at: Mapped[dt.datetime | None]
    #: The interaction logged when the activity was completed.
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interaction.id", ondelete="SET NULL")
    )


class Quote(TimestampMixin, Base):
    """An offer made from a deal's lines, numbered, with its own copy of the lines."""

    __tablename__ = "sales_quote"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("sales_opportunity.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(12), default="draft")
    currency: Mapped[str] = mapped_column(Currency, default="EUR")
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    total: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    lines: Mapped[list[QuoteLine]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="QuoteLine.position"
    )


class QuoteLine(Base):
    """A line of a quote, copied from the deal when the quote was made."""

    __tablename__ = "sales_quote_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(
        ForeignKey("sales_quote.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    product_id: Mapped[int | None] = mapped_column(
        ForeignKey("sales_product.id", ondelete="SET NULL")
    )
    description: Mapped[str] = mapped_column(String(300), default="")
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3), default=Decimal(1))
    unit_price: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    discount_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))
    total: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))


class Quota(Base):
    """A sales target for a period (a month or a quarter), of a user or of a team."""

    __tablename__ = "sales_quota"
    __table_args__ = (
        # One quota per user (or team) and period: NULLs never collide in a plain unique
        # constraint, so one partial index for each kind of owner.
        Index("uq_sales_quota_user_period", "owner_id", "period", "starts_on", unique=True,
              sqlite_where=text("team_id IS NULL"), postgresql_where=text("team_id IS NULL")),
        Index("uq_sales_quota_team_period", "team_id", "period", "starts_on", unique=True,
              sqlite_where=text("owner_id IS NULL"), postgresql_where=text("owner_id IS NULL")),
        CheckConstraint("period IN ('month', 'quarter')", name="period_kind"),
        CheckConstraint("(owner_id IS NULL) <> (team_id IS NULL)", name="one_owner"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(8), default="month")
    starts_on: Mapped[dt.date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(Currency, default="EUR")


#: The first columns of the funnel sums' primary keys, in order.
FUNNEL_KEY = ("pipeline_id", "dimension", "period", "day", "value", "owner_key")


class _FunnelCell:
    """The key both tables of the funnel's sums begin with (the primary key's order: the
    reports read a pipeline's dimension and period by a range of days)."""

    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("sales_pipeline.id", ondelete="CASCADE"), primary_key=True
    )
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: ``day``, or ``month`` for the sums of the month beginning on ``day``.
    period: Mapped[str] = mapped_column(String(5), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    value: Mapped[str] = mapped_column(String(120), primary_key=True)
    owner_key: Mapped[int] = mapped_column(Integer, primary_key=True)


class FunnelStageDay(_FunnelCell, Base):
    """The funnel's stage figures of the deals created on one day (UTC), summed; and
    again per month (``period``), so that a year's report reads a few rows per month.

    One row per pipeline, *dimension* and its *value* (``""``/``""`` for every deal;
    ``"product"`` and a product id for the deals with a line of it, ``""`` for those
    without; ``"segment"`` and the customer's industry; ``"region"`` and the customer's
    country), day, owner
    (``owner_key``: the owner's id, 0 for none) and stage: how many of those deals
    entered the stage, how many of their stays in it ended, and those stays' seconds.
    Kept by :mod:`crm_sales.services.funnel_store` in each deal change's transaction;
    archived deals are not in it.
    """

    __tablename__ = "sales_funnel_stage_day"
    __table_args__ = (PrimaryKeyConstraint(*FUNNEL_KEY, "stage_id"), {"sqlite_with_rowid": False})

    stage_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entered: Mapped[int] = mapped_column(Integer, default=0)
    left_stays: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)


class FunnelDeal(Base):
    """Under which segment and region the funnel's day sums count a deal: its customer's
    industry and country when the deal last changed through the services, or when the
    customer's did. The sums' "before" when either changes again."""

    __tablename__ = "sales_funnel_deal"

    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("sales_opportunity.id", ondelete="CASCADE"), primary_key=True
    )
    segment: Mapped[str] = mapped_column(String(120), default="")
    region: Mapped[str] = mapped_column(String(2), default="")


class FunnelOutcomeDay(_FunnelCell, Base):
    """The funnel's outcomes of the deals created on one day (UTC) or month, summed.

    Keyed like :class:`FunnelStageDay`, with the deals' currency and status instead of a
    stage: how many deals, the won ones' amount in cents and their sales cycles in
    seconds (created to closed).
    """

    __tablename__ = "sales_funnel_outcome_day"
    __table_args__ = (PrimaryKeyConstraint(*FUNNEL_KEY, "currency", "status"),
                      {"sqlite_with_rowid": False})

    currency: Mapped[str] = mapped_column(Currency, primary_key=True)
    status: Mapped[str] = mapped_column(String(8), primary_key=True)
    deals: Mapped[int] = mapped_column(Integer, default=0)
    won_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    cycle_seconds: Mapped[int] = mapped_column(BigInteger, default=0)


MODELS: tuple[type[Base], ...] = (
    Pipeline,
    Stage,
    LostReason,
    Product,
    PriceList,
    PriceListItem,
    Opportunity,
    OpportunityContact,
    OpportunityLine,
    StageStay,
    Activity,
    Quote,
    QuoteLine,
    Quota,
    FunnelStageDay,
    FunnelOutcomeDay,
    FunnelDeal,
)
