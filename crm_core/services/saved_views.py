"""Saved views: a user's named filters of a list, kept per user and list.

They are preferences of the acting user, not records: nobody else sees or changes
them, and they leave no audit entry or event. Saving under a name the user already
gave that list replaces its query.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import select

from crm_core.errors import NotFoundError, ValidationError
from crm_core.i18n import N_
from crm_core.ids import as_record_id
from crm_core.models import SavedView
from crm_core.schemas import load_or_refuse
from crm_core.schemas.saved_view import SavedViewSchema
from crm_core.services.unit_of_work import UnitOfWork

#: Saved views per user and list, at most.
MAX_VIEWS = 50
#: Query parameters that are not part of a view (where a page of it starts).
NOT_SAVED = frozenset({"cursor", "csrf_token"})


def of(uow: UnitOfWork, entity: str) -> list[SavedView]:
    """The acting user's saved views of the list ``entity``, by name."""
    user_id = _user_id(uow)
    return list(
        uow.session.scalars(
            select(SavedView)
            .where(SavedView.user_id == user_id, SavedView.entity == entity)
            .order_by(SavedView.name, SavedView.id)
        )
    )


def save(uow: UnitOfWork, data: dict[str, Any]) -> SavedView:
    """Save ``data`` (``name``, ``entity``, ``query``) for the acting user; replace a view
    of the same name. :class:`ValidationError` names each refused field."""
    loaded = load_or_refuse(SavedViewSchema(), data)
    query = clean_query(loaded["query"])
    views = {view.name: view for view in of(uow, loaded["entity"])}
    view = views.get(loaded["name"])
    if view is None:
        if len(views) >= MAX_VIEWS:
            raise ValidationError({"name": [f"Keep at most {MAX_VIEWS} views of a list."]})
        view = SavedView(user_id=_user_id(uow), entity=loaded["entity"], name=loaded["name"])
        uow.session.add(view)
    view.query = query
    uow.session.flush()
    return view


def delete(uow: UnitOfWork, view_id: Any) -> None:
    """Delete the acting user's view ``view_id``; another user's is not found."""
    ident = as_record_id(view_id)
    view = uow.session.get(SavedView, ident) if ident is not None else None
    if view is None or view.user_id != _user_id(uow):
        raise NotFoundError("saved view", view_id)
    uow.session.delete(view)
    uow.session.flush()


def clean_query(query: str) -> str:
    """``query`` without empty values and paging parameters, in a stable order."""
    pairs = [
        (key, value)
        for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=False)
        if key not in NOT_SAVED
    ]
    return urlencode(sorted(pairs))


def _user_id(uow: UnitOfWork) -> int:
    if uow.actor is None:
        raise ValidationError({"user": [N_("Saved views belong to a signed-in user.")]})
    return int(uow.actor.id)
