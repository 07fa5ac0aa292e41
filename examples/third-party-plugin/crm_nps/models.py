"""The plugin's table, declared on ``crm_core.Base`` (one metadata, stable constraint names)."""

from __future__ import annotations

import datetime as dt

from crm_core import Base, TimestampMixin, UTCDateTime, VersionedMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column


class Survey(TimestampMixin, VersionedMixin, Base):
    """The NPS survey sent after one interaction: its link's token and the answer."""

    __tablename__ = "nps_survey"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: One survey per interaction (the unique index also serves the hook's look-up).
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interaction.id", ondelete="CASCADE"), unique=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    #: The secret of the public link ``/nps/<token>``: random, unguessable.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(timezone=True))
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(timezone=True))
    #: 0 (not at all likely to recommend) to 10 (extremely likely); ``None`` until answered.
    score: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    #: Withdrawn surveys: their link no longer takes answers, the score leaves them out.
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


#: Every model of the plugin, for ``crm_register_models``.
MODELS = (Survey,)
