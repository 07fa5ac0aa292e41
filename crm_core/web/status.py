"""The installation status page and health check: database, migrations and plugins."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select, text

from crm_core.models import Contact, Customer, Interaction

blueprint = Blueprint("crm_status", __name__, template_folder="templates")


@blueprint.get("/healthz")
def health() -> ResponseReturnValue:
    """Answer 200 when the database answers, 503 otherwise (for load balancers)."""
    crm = current_app.extensions["crm"]
    try:
        with crm.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return jsonify(status="unavailable", error=type(exc).__name__), 503
    return jsonify(status="ok")


@blueprint.get("/status")
def index() -> ResponseReturnValue:
    """Show what this installation holds and which plugins it runs."""
    crm = current_app.extensions["crm"]
    with crm.session_factory() as session:
        counts = {
            label: session.scalar(select(func.count()).select_from(model)) or 0
            for label, model in (
                ("Customers", Customer),
                ("Contacts", Contact),
                ("Interactions", Interaction),
            )
        }
    return render_template(
        "crm_core/status.html", counts=counts, plugins=list(crm.plugins.infos.values())
    )
