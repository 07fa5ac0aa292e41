"""The answer page customers reach from their link, without signing in: ``/nps/<token>``.

``GET`` shows the 0-10 scale and a comment box; ``POST`` (with the session's CSRF token,
checked by core for every form) stores the answer and shows the thanks page. A refused
answer shows the form again with the field's message; an unknown token (404), a
withdrawn survey (410) and one already answered (200) each get a page of their own.
"""

from __future__ import annotations

from pathlib import Path

from crm_core import NotFoundError, ValidationError
from crm_core.web.ui.forms import field_errors, refuse_unstorable
from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue

from crm_nps import services
from crm_nps.models import Survey
from crm_nps.schemas import MAX_COMMENT
from crm_nps.score import SCALE

#: The public page, and the templates of the customer panel.
blueprint = Blueprint(
    "crm_nps",
    __name__,
    template_folder=str(Path(__file__).parent / "templates"),
)

#: Where answers come from in the audit trail.
SOURCE = "nps"


@blueprint.route("/nps/<token>", methods=["GET", "POST"])
def answer(token: str) -> ResponseReturnValue:
    """The survey of ``token``: the form, or the page saying why it cannot be answered."""
    crm = current_app.extensions["crm"]
    form = {"score": request.form.get("score", ""), "comment": request.form.get("comment", "")}
    errors: dict[str, list[str]] = {}
    with crm.unit_of_work(actor=None, source=SOURCE, write=request.method == "POST") as uow:
        try:
            survey = services.by_token(uow, token)
            if survey.archived or survey.answered_at is not None:
                raise services.SurveyClosed(survey)
            if request.method == "POST":
                refuse_unstorable(form, Survey)  # NUL characters: PostgreSQL would fail
                data = {"score": form["score"] or None, "comment": form["comment"].strip()}
                services.answer(uow, token, data)
                return render_template("crm_nps/thanks.html")
        except NotFoundError:
            return render_template("crm_nps/closed.html", reason="unknown"), 404
        except services.SurveyClosed as closed:
            if closed.survey.archived:
                return render_template("crm_nps/closed.html", reason="withdrawn"), 410
            return render_template("crm_nps/closed.html", reason="answered")
        except ValidationError as refused:
            errors = field_errors(refused.messages)
    status = 422 if errors else 200
    return render_template("crm_nps/answer.html", scale=SCALE, form=form, errors=errors,
                           max_comment=MAX_COMMENT), status

