"""The floor for ``GET /api/v1/customers/<id>``: a bare Flask endpoint reading the same row.

``bench/api_throughput.py`` serves this app with the same gunicorn set-up as crm-core
(2 sync workers) and compares the two. The endpoint does what any Flask app must do
to answer the request and nothing else: one ``SELECT`` of the customer row by
primary key on the same database (same engine set-up: WAL, busy timeout, pooled
connection), returned as JSON. No authentication, no permission check, no
visibility rule, no schema: the difference to crm-core's endpoint is the price of those.

Served by gunicorn as ``bare_app:create_app()`` (with ``bench/`` on ``--pythonpath``);
the database is ``$CRM_DATABASE_URL``, as for crm-core.
"""

from __future__ import annotations

import os

from flask import Flask, Response, json
from sqlalchemy import Table, select, text

from crm_core.config import load_settings
from crm_core.db import create_db_engine
from crm_core.models import Customer


def create_app() -> Flask:
    """A Flask app with ``GET /healthz`` and ``GET /customers/<id>`` on ``$CRM_DATABASE_URL``."""
    settings = load_settings({"database_url": os.environ["CRM_DATABASE_URL"]})
    engine = create_db_engine(settings)
    table: Table = Customer.__table__  # type: ignore[assignment]
    app = Flask("bare_app")

    @app.get("/healthz")
    def health() -> Response:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return Response('{"status":"ok"}', mimetype="application/json")

    @app.get("/customers/<int:customer_id>")
    def customer(customer_id: int) -> Response:
        with engine.connect() as connection:
            row = connection.execute(
                select(table).where(table.c.id == customer_id)
            ).mappings().first()
        if row is None:
            return Response('{"status":404}', status=404, mimetype="application/json")
        body = {key: _jsonable(value) for key, value in row.items()}
        return Response(json.dumps(body), mimetype="application/json")

    return app


def _jsonable(value: object) -> object:
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else value
