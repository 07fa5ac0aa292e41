"""Duplicates of customers and contacts: suggestions, merge, and undoing a merge.

- ``GET /<customers|contacts>/<id>/duplicates``: probable duplicates, most likely first;
- ``POST /<customers|contacts>/<id>/merge``: merge duplicates into this record
  (``If-Match`` names its version), answering the ``merge_id`` to undo it with;
- ``POST /<customers|contacts>/<id>/merges/<merge_id>/undo``: undo that merge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apispec import APISpec
from flask import Blueprint, Response, current_app, request, url_for
from marshmallow import Schema, fields, validate
from marshmallow import ValidationError as SchemaError

from crm_core.authz import require
from crm_core.duplicates import contact_duplicates, customer_duplicates
from crm_core.ids import MAX_ID, as_record_id
from crm_core.models import AuditEntry
from crm_core.services import contacts, customers, merges
from crm_core.web.api.openapi import limit_parameter, problem_responses, resource_ref, schema_ref
from crm_core.web.api.pagination import parse_limit
from crm_core.web.api.problems import ApiProblem
from crm_core.web.api.resource import (
    ApiResource,
    api_context,
    check_precondition,
    if_match_version,
    json_body,
    json_response,
)
from crm_core.web.api.resource import etag as etag_of

#: The most suggestions one request returns.
MAX_SUGGESTIONS = 50
_RECORD_IDS = fields.Integer(strict=True, validate=validate.Range(1, MAX_ID))


class MergeIn(Schema):
    """What to merge into the record: the duplicates, and whose value each field keeps."""

    duplicate_ids = fields.List(
        _RECORD_IDS,
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "The records to merge into this one; they are archived."},
    )
    field_sources = fields.Dict(
        keys=fields.String(),
        values=_RECORD_IDS,
        load_default=dict,
        metadata={
            "description": "Field name -> the id of the record (this one or a duplicate) "
            "whose value to keep. Fields left out keep this record's value, or a "
            "duplicate's when this record has none."
        },
    )


class DuplicateOut(Schema):
    """A probable duplicate, with the evidence."""

    id = fields.Integer(required=True)
    title = fields.String(required=True)
    score = fields.Float(required=True, metadata={"description": "0 to 1: how sure."})
    reasons = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "`email`, `phone`, `name` (and `customer` for contacts)."},
    )
    name_similarity = fields.Float(required=True, metadata={"description": "0 to 1."})


@dataclass(frozen=True)
class _Mergeable:
    entity: str
    plural: str
    service: Any
    suggest: Callable[..., list[Any]]


_MERGEABLE = (
    _Mergeable("customer", "customers", customers, customer_duplicates),
    _Mergeable("contact", "contacts", contacts, contact_duplicates),
)
_DUPLICATES = DuplicateOut(many=True)
_MERGE_IN = MergeIn()


def register(blueprint: Blueprint) -> None:
    """Add the duplicates, merge and undo routes of customers and contacts."""
    for kind in _MERGEABLE:
        base = f"/{kind.plural}/<record_id>"
        blueprint.add_url_rule(
            f"{base}/duplicates", f"{kind.plural}_duplicates", _bind(suggestions, kind),
            methods=["GET"],
        )
        blueprint.add_url_rule(
            f"{base}/merge", f"{kind.plural}_merge", _bind(merge, kind), methods=["POST"]
        )
        blueprint.add_url_rule(
            f"{base}/merges/<merge_id>/undo", f"{kind.plural}_merge_undo", _bind(undo, kind),
            methods=["POST"],
        )


def suggestions(kind: _Mergeable, record_id: str) -> Response:
    """``GET /<plural>/<id>/duplicates``: records that are probably the same, best first."""
    crm, actor = api_context()
    require(actor, f"{kind.entity}.view")
    raw = request.args.get("limit")
    limit = parse_limit(raw if raw not in (None, "") else "10")
    if limit > MAX_SUGGESTIONS:
        raise ApiProblem(400, "Bad limit", f"limit must be from 1 to {MAX_SUGGESTIONS}.",
                         errors={"limit": [f"Must be from 1 to {MAX_SUGGESTIONS}."]})
    resource = _resource(kind)
    with crm.session_factory() as session:
        found = kind.suggest(session, actor, record_id, limit)
        records = resource._dump(crm, [candidate.record for candidate in found], many=True)
    data = [
        {**summary, "record": record}
        for summary, record in zip(_DUPLICATES.dump(found), records, strict=True)
    ]
    return json_response({"data": data})


def merge(kind: _Mergeable, record_id: str) -> Response:
    """``POST /<plural>/<id>/merge``: merge duplicates into the record (``<entity>.merge``)."""
    crm, actor = api_context()
    require(actor, f"{kind.entity}.merge")
    ident = _record_id(kind, record_id)
    expected = if_match_version()
    body = json_body()
    with crm.unit_of_work(actor=actor, source="api") as uow:
        record = kind.service.get(uow, ident)
        check_precondition(record, expected)
        try:
            wanted = _MERGE_IN.load(body)
        except SchemaError as exc:
            raise ApiProblem(422, "Invalid input", "Some fields were refused; see errors.",
                             kind="validation", errors=exc.messages) from exc
        survivor = kind.service.merge(
            uow, record.id, wanted["duplicate_ids"], field_sources=wanted["field_sources"]
        )
        merge_id = merges.merge_id(uow, kind.entity, survivor.id)
        result = {
            "survivor": _resource(kind)._dump(crm, survivor),
            "merged_ids": list(dict.fromkeys(wanted["duplicate_ids"])),
            "merge_id": merge_id,
            "undo": url_for(
                f"crm_api.{kind.plural}_merge_undo", record_id=survivor.id, merge_id=merge_id
            ),
        }
        etag = etag_of(survivor)
    return json_response(result, headers={"ETag": etag})


def undo(kind: _Mergeable, record_id: str, merge_id: str) -> Response:
    """``POST /<plural>/<id>/merges/<merge_id>/undo``: undo a merge into the record."""
    crm, actor = api_context()
    require(actor, f"{kind.entity}.merge")
    ident = _record_id(kind, record_id)
    with crm.unit_of_work(actor=actor, source="api") as uow:
        survivor = kind.service.get(uow, ident)
        entry_id = as_record_id(merge_id)
        entry = uow.session.get(AuditEntry, entry_id) if entry_id is not None else None
        if entry is None or entry.entity != kind.entity or entry.entity_id != str(survivor.id):
            raise ApiProblem(404, "Not found", f"No merge {merge_id!r} into {kind.entity} "
                             f"{survivor.id}.", kind="not-found")
        undone = merges.undo_merge(uow, kind.entity, entry.id)
        resource = _resource(kind)
        result = {
            "survivor": resource._dump(crm, undone.survivor),
            "restored": resource._dump(crm, undone.restored, many=True),
        }
        etag = etag_of(undone.survivor)
    return json_response(result, headers={"ETag": etag})


def _bind(view: Callable[..., Response], kind: _Mergeable) -> Callable[..., Response]:
    def bound(**kwargs: str) -> Response:
        return view(kind, **kwargs)

    bound.__name__ = f"{view.__name__}_{kind.plural}"
    bound.__doc__ = view.__doc__
    return bound


def _resource(kind: _Mergeable) -> ApiResource:
    resource: ApiResource = current_app.extensions["crm_api_resources"][kind.plural]
    return resource


def _record_id(kind: _Mergeable, raw: str) -> int:
    ident = as_record_id(raw) if raw.isascii() and raw.isdigit() else None
    if ident is None or ident < 1:
        raise ApiProblem(404, "Not found", f"No {kind.entity} {raw!r}.", kind="not-found")
    return ident


# -- the OpenAPI description -------------------------------------------------------------


def describe(spec: APISpec) -> None:
    """Add the duplicates, merge and undo operations to the OpenAPI document being built."""
    merge_in = schema_ref(spec, MergeIn, output=False)
    duplicate = schema_ref(spec, DuplicateOut, "Duplicate")
    for kind in _MERGEABLE:
        record = resource_ref(spec, kind.plural)
        record_id = {
            "name": "record_id",
            "in": "path",
            "required": True,
            "description": f"The id of the {kind.entity}.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        }
        etag = {"ETag": {"$ref": "#/components/headers/ETag"}}
        spec.path(
            path=f"/{kind.plural}/{{record_id}}/duplicates",
            parameters=[record_id],
            operations={"get": _suggestions_operation(kind, duplicate, record)},
        )
        spec.path(
            path=f"/{kind.plural}/{{record_id}}/merge",
            parameters=[record_id],
            operations={"post": _merge_operation(kind, merge_in, record, etag)},
        )
        spec.path(
            path=f"/{kind.plural}/{{record_id}}/merges/{{merge_id}}/undo",
            parameters=[
                record_id,
                {
                    "name": "merge_id",
                    "in": "path",
                    "required": True,
                    "description": "The `merge_id` the merge answered.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                },
            ],
            operations={"post": _undo_operation(kind, record, etag)},
        )


def _suggestions_operation(kind: _Mergeable, duplicate: Any, record: Any) -> dict[str, Any]:
    item = {"allOf": [duplicate], "properties": {"record": record}, "required": ["record"]}
    return {
        "operationId": f"{kind.plural}_duplicates",
        "tags": [kind.plural],
        "summary": f"Probable duplicates of a {kind.entity}",
        "description": "Active records that are probably the same, most likely first: same "
        "email, same phone number (E.164), similar name. Needs "
        f"`{kind.entity}.view`; only records the caller may see.",
        "parameters": [limit_parameter(MAX_SUGGESTIONS, 10)],
        "responses": {
            "200": {
                "description": "The suggestions.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": {"type": "array", "items": item}},
                        }
                    }
                },
            },
            **problem_responses(400, 401, 403, 404),
        },
    }


def _merge_operation(kind: _Mergeable, merge_in: Any, record: Any, etag: Any) -> dict[str, Any]:
    return {
        "operationId": f"{kind.plural}_merge",
        "tags": [kind.plural],
        "summary": f"Merge duplicates into a {kind.entity}",
        "description": "The duplicates' references (contacts, interactions, plugins' "
        "records) move to this record, chosen field values are kept, the duplicates are "
        "archived, and the audit trail records it all; `undo` reverses it. Needs "
        f"`{kind.entity}.merge`; `If-Match` must name this record's version.",
        "parameters": ["IfMatch"],
        "requestBody": {"required": True, "content": {"application/json": {"schema": merge_in}}},
        "responses": {
            "200": {
                "description": "Merged.",
                "headers": etag,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["survivor", "merged_ids", "merge_id", "undo"],
                            "properties": {
                                "survivor": record,
                                "merged_ids": {"type": "array", "items": {"type": "integer"}},
                                "merge_id": {
                                    "type": "integer",
                                    "description": "The audit entry of the merge.",
                                },
                                "undo": {
                                    "type": "string",
                                    "format": "uri-reference",
                                    "description": "`POST` here to undo the merge.",
                                },
                            },
                        }
                    }
                },
            },
            **problem_responses(400, 401, 403, 404, 409, 412, 415, 422, 428),
        },
    }


def _undo_operation(kind: _Mergeable, record: Any, etag: Any) -> dict[str, Any]:
    return {
        "operationId": f"{kind.plural}_merge_undo",
        "tags": [kind.plural],
        "summary": f"Undo a merge into a {kind.entity}",
        "description": "Moves everything the merge moved back, restores the merged records "
        "and the survivor's old values. Refused (422, every reason listed) when that would "
        f"lose work done since. Needs `{kind.entity}.merge`.",
        "responses": {
            "200": {
                "description": "Undone.",
                "headers": etag,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["survivor", "restored"],
                            "properties": {
                                "survivor": record,
                                "restored": {"type": "array", "items": record},
                            },
                        }
                    }
                },
            },
            **problem_responses(401, 403, 404, 409, 422),
        },
    }
