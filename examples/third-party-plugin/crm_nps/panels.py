"""The *NPS* panel on the customer's page: the score, its counts and a chart."""

from __future__ import annotations

from typing import Any

from crm_core.authz import has_permission
from crm_core.extensions import Panel
from crm_core.web.ui.charts import Series, bar_chart
from flask import current_app
from markupsafe import Markup

from crm_nps import services
from crm_nps.permissions import VIEW
from crm_nps.score import SCALE


def answers_chart(per_score: list[int]) -> Markup:
    """A bar chart of the answers per score, 0 to 10 (core's SVG chart helpers)."""
    return bar_chart(
        "Answers per score",
        [str(score) for score in SCALE],
        [Series("Answers", per_score)],
        height=200,
    )


def customer_panels(customer: Any, actor: Any) -> list[Panel]:
    """*NPS*: the customer's score over their answered surveys, for users who may see it."""
    if not has_permission(actor, VIEW):
        return []
    crm = current_app.extensions["crm"]
    with crm.unit_of_work(actor=actor, source="ui", write=False) as uow:
        nps, per_score, sent = services.customer_nps(uow, customer.id)
    return [
        Panel(
            "nps",
            "NPS",
            "crm_nps/panel.html",
            context={"nps": nps, "sent": sent, "chart": answers_chart(per_score)},
            order=50,
        )
    ]
