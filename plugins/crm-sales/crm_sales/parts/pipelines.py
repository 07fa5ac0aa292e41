"""The sales administration of pipelines, stages and lost reasons (``sales.admin``).

- ``/sales/pipelines``: every pipeline with its stages, *Make default*, and the lost
  reasons: add one, deactivate or reactivate it;
- ``/sales/pipelines/new`` and ``/sales/pipelines/<id>/edit``: the pipeline form — name,
  default, and the stages as repeated rows (``stages-0-name``, ``stages-0-probability``,
  ``stages-0-outcome``, ``stages-0-order``, a hidden ``stages-0-id`` for a stored stage):
  the stored stages plus :data:`EMPTY_ROWS` empty ones. Rows are saved in the order of
  their *Order* numbers (ties: as shown); a row left empty is dropped, which removes a
  stored stage. The service's messages show beside the row's field they concern.

Everything goes through :mod:`crm_sales.services.pipelines`; a refused form answers 422
with nothing saved. Core's 403 and 404 pages answer for its blueprint only, so the views
here turn :class:`PermissionDenied` and :class:`NotFoundError` into them themselves.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from crm_core.authz import has_permission, require
from crm_core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from crm_core.extensions import MenuItem
from crm_core.models import User
from crm_core.web.ui import ADMIN_PERMISSIONS, not_found, permission_denied
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.conflicts import Difference, differences, posted_version
from crm_core.web.ui.forms import field_errors, refuse_unstorable
from crm_sales import web
from crm_sales.models import LostReason, Outcome, Pipeline
from crm_sales.services import pipelines
from crm_sales.services.pipelines import ADMIN

F = TypeVar("F", bound=Callable[..., Any])

#: Empty stage rows the form offers after the stored ones.
EMPTY_ROWS = 2
#: The fields of a stage row, as posted: ``stages-<n>-<field>``.
ROW_FIELDS = ("id", "name", "probability", "outcome", "order")
#: How pages name the outcomes.
OUTCOME_LABELS = {
    Outcome.OPEN.value: _l("open"),
    Outcome.WON.value: _l("won"),
    Outcome.LOST.value: _l("lost"),
}
_ROW_KEY = re.compile(r"stages-(\d{1,4})-(?:id|name|probability|outcome|order)")
_WHOLE_NUMBER = re.compile(r"[+-]?\d{1,9}")


def settings_pages(actor: User) -> list[MenuItem]:
    """*Pipelines* among the plugins' settings, for the sales admin."""
    return [MenuItem(_l("Pipelines"), "crm_sales.pipelines", permission=ADMIN)]


def _error_pages(view: F) -> F:
    """Answer a missing permission with core's 403 page, a missing record with its 404."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        try:
            return view(*args, **kwargs)  # type: ignore[no-any-return]
        except PermissionDenied as error:
            return permission_denied(error)
        except NotFoundError as error:
            return not_found(error)

    return wrapped  # type: ignore[return-value]


# -- the list, the default, the lost reasons ----------------------------------------------


@web.ui.get("/pipelines", endpoint="pipelines")
@page
@_error_pages
def pipelines_page() -> ResponseReturnValue:
    """Every pipeline with its stages, and the lost reasons."""
    require(actor(), ADMIN)
    return _list_page({}, {})


@web.ui.post("/pipelines/<int:pipeline_id>/default", endpoint="pipeline_default")
@page
@_error_pages
def make_default(pipeline_id: int) -> ResponseReturnValue:
    """Make the pipeline the default: new deals start in it."""
    crm, user = current_crm(), actor()
    require(user, ADMIN)
    with crm.unit_of_work(actor=user, source="ui") as uow:
        name = pipelines.set_default(uow, pipeline_id).name
    flash(_("%(name)s is now the default pipeline.", name=name))
    return redirect(url_for("crm_sales.pipelines"))


@web.ui.post("/lost-reasons", endpoint="lost_reason_add")
@page
@_error_pages
def add_lost_reason() -> ResponseReturnValue:
    """Add a lost reason; a refused name shows beside the field (422)."""
    crm, user = current_crm(), actor()
    require(user, ADMIN)
    values = {"name": request.form.get("name", "")}
    try:
        refuse_unstorable(request.form, LostReason)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            name = pipelines.create_lost_reason(uow, values).name
    except ValidationError as exc:
        return _list_page(values, field_errors(exc.messages), status=422)
    flash(_("The lost reason %(name)s was added.", name=name))
    return redirect(url_for("crm_sales.pipelines", _anchor="lost-reasons"))


@web.ui.post("/lost-reasons/<int:reason_id>/<any(activate, deactivate):action>",
             endpoint="lost_reason_state")
@page
@_error_pages
def lost_reason_state(reason_id: int, action: str) -> ResponseReturnValue:
    """Deactivate a lost reason (no longer offered), or offer it again."""
    crm, user = current_crm(), actor()
    require(user, ADMIN)
    with crm.unit_of_work(actor=user, source="ui") as uow:
        if action == "deactivate":
            name = pipelines.deactivate_lost_reason(uow, reason_id).name
            message = _("The lost reason %(name)s is no longer offered.", name=name)
        else:
            name = pipelines.activate_lost_reason(uow, reason_id).name
            message = _("The lost reason %(name)s is offered again.", name=name)
    flash(message)
    return redirect(url_for("crm_sales.pipelines", _anchor="lost-reasons"))


def _list_page(
    values: Mapping[str, Any], errors: Mapping[str, list[str]], *, status: int = 200
) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        found = pipelines.list_pipelines(uow)
        reasons = pipelines.list_lost_reasons(uow)
        return render_template(
            "crm_sales/pipelines/list.html",
            pipelines=found,
            reasons=reasons,
            values=values,
            errors=errors,
            outcome_labels=OUTCOME_LABELS,
            admin_index=_can_open_admin(user),
        ), status


# -- the pipeline form --------------------------------------------------------------------


@web.ui.route("/pipelines/new", methods=["GET", "POST"], endpoint="new_pipeline")
@page
@_error_pages
def new_pipeline() -> ResponseReturnValue:
    """The empty pipeline form (with the usual stages to start from); saving creates it."""
    crm, user = current_crm(), actor()
    require(user, ADMIN)
    if request.method == "GET":
        values: dict[str, Any] = {"name": "", "is_default": ""}
        starter = [
            {"name": _("Qualification"), "probability": 10, "outcome": Outcome.OPEN.value},
            {"name": _("Proposal"), "probability": 50, "outcome": Outcome.OPEN.value},
            {"name": _("Won"), "probability": 100, "outcome": Outcome.WON.value},
            {"name": _("Lost"), "probability": 0, "outcome": Outcome.LOST.value},
        ]
        return _form(None, values, _put_rows(values, starter), {})
    data, values, count, numbers, refused = _posted(request.form)
    try:
        if refused:
            raise ValidationError(refused)
        refuse_unstorable(request.form, Pipeline)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            name = pipelines.create(uow, data).name
    except ValidationError as exc:
        return _form(None, values, count, _row_errors(exc.messages, numbers), status=422)
    flash(_("The pipeline %(name)s was created.", name=name))
    return redirect(url_for("crm_sales.pipelines"))


@web.ui.route("/pipelines/<int:pipeline_id>/edit", methods=["GET", "POST"],
              endpoint="edit_pipeline")
@page
@_error_pages
def edit_pipeline(pipeline_id: int) -> ResponseReturnValue:
    """The pipeline form filled in; saving replaces its name, default flag and stages."""
    crm, user = current_crm(), actor()
    require(user, ADMIN)
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        pipeline = pipelines.get(uow, pipeline_id)
        stored = [{"id": stage.id, "name": stage.name, "probability": stage.probability,
                   "outcome": stage.outcome} for stage in pipeline.stages]
    if request.method == "GET":
        values = {"name": pipeline.name, "is_default": "1" if pipeline.is_default else "",
                  "version": pipeline.version}
        return _form(pipeline, values, _put_rows(values, stored), {})
    expected = posted_version(request.form)
    data, values, count, numbers, refused = _posted(request.form)
    values["version"] = expected
    try:
        if refused:
            raise ValidationError(refused)
        refuse_unstorable(request.form, Pipeline)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            name = pipelines.update(uow, pipeline_id, data, expected_version=expected).name
    except ValidationError as exc:
        return _form(pipeline, values, count, _row_errors(exc.messages, numbers), status=422)
    except ConflictError:
        # Someone saved first: keep what this user sent, show what differs, and take the
        # stored version, so saving again keeps theirs knowingly.
        values["version"] = pipeline.version
        conflict = differences(
            _as_texts(pipeline.name, pipeline.is_default, stored),
            _as_texts(data["name"], data["is_default"], data["stages"]),
            ("name", "is_default", "stages"),
            {"name": _("Name"), "is_default": _("Default"), "stages": _("Stages")},
        )
        return _form(pipeline, values, count, {}, conflict=conflict, status=409)
    flash(_("The pipeline %(name)s was saved.", name=name))
    return redirect(url_for("crm_sales.pipelines"))


def _as_texts(name: str, is_default: bool, stages: list[dict[str, Any]]) -> dict[str, str]:
    """A pipeline's name, default flag and stages as the conflict table shows them."""
    return {
        "name": name,
        "is_default": _("yes") if is_default else _("no"),
        "stages": ", ".join(f"{row['name']} ({row.get('probability', '')} %, "
                            f"{OUTCOME_LABELS.get(row['outcome'], row['outcome'])})"
                            for row in stages),
    }


def _form(
    pipeline: Pipeline | None,
    values: Mapping[str, Any],
    count: int,
    errors: Mapping[str, list[str]],
    *,
    conflict: list[Difference] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    other = [text for name, texts in errors.items()
             if name not in ("name", "is_default", "stages") and not _ROW_KEY.fullmatch(name)
             for text in texts]
    return render_template(
        "crm_sales/pipelines/form.html",
        pipeline=pipeline,
        values=values,
        count=count,
        errors=errors,
        other_errors=other,
        outcomes=[(value, str(label)) for value, label in OUTCOME_LABELS.items()],
        admin_index=_can_open_admin(actor()),
        conflict=conflict,
    ), status


# -- the form's data ----------------------------------------------------------------------


def _posted(
    form: MultiDict[str, str],
) -> tuple[dict[str, Any], dict[str, Any], int, list[int], dict[str, list[str]]]:
    """The posted form as the service's data, the values to show again, the number of rows,
    the row number of each stage sent (in saving order), and the form's own refusals."""
    values: dict[str, Any] = {"name": form.get("name", ""),
                              "is_default": "1" if form.get("is_default") else ""}
    numbers = sorted({int(found.group(1)) for key in form if (found := _ROW_KEY.fullmatch(key))})
    refused: dict[str, list[str]] = {}
    rows: list[tuple[int, int, dict[str, Any]]] = []
    for number in numbers:
        posted = {field: (form.get(f"stages-{number}-{field}") or "").strip()
                  for field in ROW_FIELDS}
        for field, text in posted.items():
            values[f"stages-{number}-{field}"] = text
        if not posted["name"] and not posted["probability"]:
            continue  # an empty row: no stage (a stored one is removed)
        order = _whole_number(posted["order"])
        if posted["order"] and not isinstance(order, int):
            refused[f"stages-{number}-order"] = [_("Enter a whole number.")]
        stage: dict[str, Any] = {"name": posted["name"],
                                 "outcome": posted["outcome"] or Outcome.OPEN.value}
        if posted["probability"]:
            stage["probability"] = _whole_number(posted["probability"])
        if posted["id"]:
            stage["id"] = _whole_number(posted["id"])
        sort_key = order if isinstance(order, int) else number + 1
        rows.append((sort_key, number, stage))
    rows.sort(key=lambda row: (row[0], row[1]))
    data = {"name": values["name"], "is_default": bool(values["is_default"]),
            "stages": [stage for _order, _number, stage in rows]}
    count = (numbers[-1] + 1) if numbers else 0
    return data, values, count, [number for _order, number, _stage in rows], refused


def _put_rows(values: dict[str, Any], stages: list[dict[str, Any]]) -> int:
    """Write ``stages`` (and the empty rows after them) into ``values``; the row count."""
    for number, stage in enumerate(stages):
        values[f"stages-{number}-id"] = str(stage.get("id") or "")
        values[f"stages-{number}-name"] = stage["name"]
        values[f"stages-{number}-probability"] = str(stage["probability"])
        values[f"stages-{number}-outcome"] = stage["outcome"]
    count = len(stages) + EMPTY_ROWS
    for number in range(count):
        values[f"stages-{number}-order"] = str(number + 1)
        values.setdefault(f"stages-{number}-outcome", Outcome.OPEN.value)
    return count


def _row_errors(messages: Mapping[str, Any], numbers: list[int]) -> dict[str, list[str]]:
    """The service's messages by form field: a stage's (``{"stages": {2: {"name": [...]}}}``)
    beside its row's field, the list's own (``_schema``) under ``stages``."""
    errors: dict[str, list[str]] = {}
    for name, value in messages.items():
        key = str(name)
        if key == "stages" and isinstance(value, Mapping):
            for index, inner in value.items():
                number = numbers[index] if isinstance(index, int) and index < len(numbers) else None
                if number is not None and isinstance(inner, Mapping):
                    for field, texts in inner.items():
                        target = f"stages-{number}-{field}" if field in ROW_FIELDS else "stages"
                        errors.setdefault(target, []).extend(field_errors({"x": texts})["x"])
                else:
                    errors.setdefault("stages", []).extend(field_errors({"x": inner})["x"])
        else:
            errors.setdefault(key, []).extend(field_errors({"x": value})["x"])
    return errors


def _whole_number(text: str) -> int | str:
    """``text`` as an integer when it is one (the schema refuses anything else by name)."""
    return int(text) if _WHOLE_NUMBER.fullmatch(text) else text


def _can_open_admin(user: User) -> bool:
    """Whether the user may open core's administration page (the crumbs link to it)."""
    return any(has_permission(user, permission) for permission in ADMIN_PERMISSIONS)
