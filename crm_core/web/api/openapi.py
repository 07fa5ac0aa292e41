"""The OpenAPI 3.1 document of ``/api/v1`` and the human-readable API docs page.

Both are built from the registered :class:`~crm_core.web.api.resource.ApiResource`
objects (core's and plugins'), reading each resource's schema from the CRM it runs
in, so custom attributes and the fields plugins add are always described. The
document is built once per app, on first use, and kept in
``app.extensions["crm_openapi"]``.

Every resource gets the same operations (list, create, get, update, archive and,
when its service can, restore), each with the shared parameters, headers and
``application/problem+json`` error responses. Per schema there are four
components: ``<Name>`` (what the API sends), ``<Name>Input`` (what ``POST``
accepts), ``<Name>Patch`` (what ``PATCH`` accepts) and ``<Name>Page`` (a list
page).

Endpoints that are not ApiResources can still appear: register a contributor with
:func:`add_openapi_contributor`; it gets the :class:`apispec.APISpec` while the
document is built and may add paths and components (:func:`problem_responses` and
:func:`problem_response_ref` give it the shared error responses; :func:`schema_ref`,
:func:`input_ref`, :func:`resource_ref` and :func:`page_of` its bodies).

Field types: exact decimals sent as strings (``fields.Decimal(as_string=True)``) are
``type: string``, ``format: decimal``, with a pattern of their decimal places and their
bounds, as strings, in the description (:class:`_CrmConverter`); crm-core's own field
types (tags, email addresses, phone numbers...) say what they accept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import Blueprint, Flask, Response, current_app, json, render_template
from markupsafe import Markup, escape
from marshmallow import Schema, fields, validate
from sqlalchemy import inspect as sql_inspect

from crm_core.ids import MAX_ID
from crm_core.schemas.fieldtypes import (
    CountryCode,
    EmailAddress,
    PhoneNumber,
    Tags,
    Text,
    Website,
)
from crm_core.version import __version__
from crm_core.web.api.outputs import HistoryEntryOut
from crm_core.web.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, int_bounds, python_type_of
from crm_core.web.api.problems import MEDIA_TYPE as PROBLEM_MEDIA_TYPE
from crm_core.web.api.problems import PROBLEM_TYPE
from crm_core.web.api.resource import ApiResource

#: Per document being built: the component names of resources and of contributed schemas.
_RESOURCE_COMPONENTS: WeakKeyDictionary[APISpec, dict[str, str]] = WeakKeyDictionary()
_SCHEMA_NAMES: WeakKeyDictionary[APISpec, dict[type[Schema], str]] = WeakKeyDictionary()
_INPUT_NAMES: WeakKeyDictionary[APISpec, dict[tuple[type[Schema], bool], str]] = (
    WeakKeyDictionary()
)

OPENAPI_VERSION = "3.1.0"
EXTENSION_KEY = "crm_openapi"
CONTRIBUTORS_KEY = "crm_openapi_contributors"

#: JSON Schema keywords that describe what input may be, not what a stored record is.
_INPUT_ONLY_KEYWORDS = ("default", "minLength", "maxLength", "pattern", "minItems", "maxItems")

#: A contributor adds paths and components to the document being built.
Contributor = Callable[[APISpec], None]

#: The error responses every operation may give, by status: (component name, description).
PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "A query parameter or the body is malformed; `errors` names it."),
    401: ("Unauthorized", "No valid credentials: send a bearer token or sign in."),
    403: ("Forbidden", "The authenticated user lacks the permission this needs."),
    404: ("NotFound", "No such record, or one the authenticated user may not see."),
    409: ("Conflict", "The record changed while this request was being applied."),
    412: ("PreconditionFailed", "`If-Match` does not name the record's current version."),
    415: ("UnsupportedMediaType", "The body must be a JSON object sent as `application/json`."),
    422: ("UnprocessableContent", "Some fields were refused; `errors` maps each to messages."),
    428: ("PreconditionRequired", "`If-Match` is missing: send the `ETag` you read."),
}

_API_DESCRIPTION = """\
The REST API of crm-core and of its installed plugins.

* **Authentication**: `Authorization: Bearer <token>` (create a token with
  `crm token create`), or the session cookie of a signed-in user.
* **Lists** are keyset-paginated: follow `next` until it is `null`; `limit` is 1 to
  500. `sort` names a sort key, `-key` sorts descending. `fields` picks the fields to
  return. Archived records are left out unless `archived=true` or `archived=any`.
* **Versions**: every record has an `ETag` (its `version`). `PATCH`, `DELETE` and
  `restore` need `If-Match` with it: 428 without, 412 when stale, 409 when the record
  changed during the request. `If-None-Match` on `GET` answers 304 when unchanged.
* **Errors** are `application/problem+json` (RFC 9457); 422 carries field messages in
  `errors`.
"""


# -- public helpers ------------------------------------------------------------------------


def add_openapi_contributor(app: Flask, contributor: Contributor) -> None:
    """Have ``contributor(spec)`` add paths or components when ``app``'s document is built.

    Call it while setting up the app (before the first request for the document):
    the document is built once and then cached.
    """
    app.extensions.setdefault(CONTRIBUTORS_KEY, []).append(contributor)
    app.extensions.pop(EXTENSION_KEY, None)


def problem_response_ref(status: int) -> dict[str, str]:
    """A ``$ref`` to the shared problem response for ``status`` (one of :data:`PROBLEMS`)."""
    return {"$ref": f"#/components/responses/{PROBLEMS[status][0]}"}


def problem_responses(*statuses: int) -> dict[str, Any]:
    """``{status: $ref}`` of the shared problem responses, for an operation's ``responses``."""
    return {str(status): problem_response_ref(status) for status in statuses}


def schema_ref(
    spec: APISpec, schema_class: type[Schema], name: str | None = None, *, output: bool = True
) -> dict[str, str]:
    """A ``$ref`` to the component describing ``schema_class``, added on first use.

    ``name`` defaults to the class name without ``Schema``/``Out``; a name another
    schema took already gets a number appended. An ``output`` schema (what the API
    sends) stays open to fields added later; an input one refuses unknown fields, as
    loading it does.
    """
    names = _SCHEMA_NAMES.setdefault(spec, {})
    if schema_class not in names:
        base = _component_name(name or schema_class.__name__.removesuffix("Out"))
        base = base.removesuffix("Schema") or "Object"
        candidate, counter = base, 1
        while candidate in spec.components.schemas or candidate == "Problem":
            counter += 1
            candidate = f"{base}{counter}"
        spec.components.schema(candidate, schema=schema_class)
        if output:
            spec.components.schemas[candidate].pop("additionalProperties", None)
        names[schema_class] = candidate
    return _ref(names[schema_class])


def input_ref(
    spec: APISpec, schema_class: type[Schema], name: str | None = None, *, partial: bool = False
) -> dict[str, str]:
    """A ``$ref`` to what a write accepts of ``schema_class``, as an ApiResource's body:
    ``<name>Input`` (what ``POST`` accepts: its required fields required) or, ``partial``,
    ``<name>Patch`` (what ``PATCH`` accepts: nothing required); both without its
    read-only fields and refusing unknown ones.

    Added on first use; ``name`` as in :func:`schema_ref` (a number is appended to one
    taken already). For the write routes of a plugin's own that load with a schema.
    """
    names = _INPUT_NAMES.setdefault(spec, {})
    key = (schema_class, partial)
    if key not in names:
        suffix = "Patch" if partial else "Input"
        base = _component_name(name or schema_class.__name__.removesuffix("Out"))
        base = base.removesuffix("Schema") or "Object"
        candidate, counter = f"{base}{suffix}", 1
        while candidate in spec.components.schemas:
            counter += 1
            candidate = f"{base}{counter}{suffix}"
        plugin = next(p for p in spec.plugins if isinstance(p, MarshmallowPlugin))
        assert plugin.converter is not None
        what = (
            f"A partial change to a {base}: only the fields to change."
            if partial else f"A new {base}: what `POST` accepts."
        )
        spec.components.schema(
            candidate, component=_input_schema(plugin.converter, schema_class, partial, what)
        )
        names[key] = candidate
    return _ref(names[key])


def resource_ref(spec: APISpec, resource_name: str) -> dict[str, str]:
    """A ``$ref`` to the record component of the API resource named ``resource_name``."""
    return _ref(_RESOURCE_COMPONENTS[spec][resource_name])


def page_of(item: Mapping[str, Any], description: str) -> dict[str, Any]:
    """The JSON schema of a list page: ``data`` (items like ``item``) and the ``next`` link."""
    return {
        "type": "object",
        "description": description,
        "required": ["data", "next"],
        "properties": {
            "data": {"type": "array", "items": item},
            "next": {
                "type": ["string", "null"],
                "format": "uri",
                "description": "The URL of the next page; `null` on the last page.",
            },
        },
    }


def openapi_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s API, built on first use and cached on the app."""
    document = app.extensions.get(EXTENSION_KEY)
    if document is None:
        document = build_openapi(app)
        app.extensions[EXTENSION_KEY] = document
    return document


def build_openapi(app: Flask) -> dict[str, Any]:
    """Build the OpenAPI 3.1 document of every ApiResource registered on ``app``."""
    resources: Mapping[str, ApiResource] = app.extensions.get("crm_api_resources", {})
    builder = _Builder(app.extensions["crm"], app.config.get("SESSION_COOKIE_NAME", "session"))
    builder.add_resources(resources.values())
    for contributor in app.extensions.get(CONTRIBUTORS_KEY, ()):
        contributor(builder.spec)
    return builder.spec.to_dict()


# -- the builder -------------------------------------------------------------------------------


class _CrmConverter(OpenAPIConverter):
    """apispec's field converter, describing exact decimals sent as strings as strings.

    apispec calls every ``fields.Decimal`` a number, and writes the bounds of one with
    ``as_string=True`` as strings (``"maximum": "99.00"``), which OpenAPI 3.1 refuses.
    Such a field is ``type: string`` with ``format: decimal`` here; its pattern and
    bounds come from :func:`_decimal_notes`.
    """

    def field2type_and_format(self, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
        """``string``/``decimal`` for a decimal sent as a string, else apispec's mapping."""
        if _is_decimal_string(field):
            return {"type": "string", "format": "decimal"}
        return super().field2type_and_format(field, **kwargs)  # type: ignore[no-any-return]

    def field2range(self, field: fields.Field, ret: dict[str, Any]) -> dict[str, Any]:
        """No ``minimum``/``maximum`` for a decimal string (its description gives them);
        a decimal sent as a number gets numbers as bounds."""
        if _is_decimal_string(field):
            return {}
        bounds: dict[str, Any] = super().field2range(field, ret)
        return {key: _json_number(value) for key, value in bounds.items()}


class _CrmMarshmallowPlugin(MarshmallowPlugin):
    """apispec's marshmallow plugin with :class:`_CrmConverter`."""

    Converter = _CrmConverter


class _Builder:
    """Turns ApiResources into paths and components of one :class:`APISpec`."""

    def __init__(self, crm: Any, cookie_name: str) -> None:
        self.crm = crm
        self.marshmallow = _CrmMarshmallowPlugin(schema_name_resolver=self._schema_name)
        self.spec = APISpec(
            title="crm-core API",
            version=__version__,
            openapi_version=OPENAPI_VERSION,
            plugins=[self.marshmallow],
            info={"description": _API_DESCRIPTION},
            servers=[{"url": "/api/v1", "description": "This installation"}],
            security=[{"bearerAuth": []}, {"sessionCookie": []}],
        )
        converter = self.marshmallow.converter
        assert converter is not None
        converter.field_mapping = dict(converter.field_mapping)  # never the shared default
        self.marshmallow.map_to_openapi_type(Text, "string", None)
        self.marshmallow.map_to_openapi_type(EmailAddress, "string", "email")
        self.marshmallow.map_to_openapi_type(Website, "string", "uri")
        self.marshmallow.map_to_openapi_type(PhoneNumber, "string", None)
        self.marshmallow.map_to_openapi_type(CountryCode, "string", None)
        self.marshmallow.map_to_openapi_type(Tags, "array", None)
        converter.add_attribute_function(_crm_field_notes)
        #: Names of the components made for resources' own schemas, reserved up front so a
        #: nested schema never takes one of them.
        self._reserved: set[str] = set()
        self._names: dict[type[Schema], str] = {}
        self._add_shared_components(cookie_name)

    # -- components shared by every operation

    def _add_shared_components(self, cookie_name: str) -> None:
        components = self.spec.components
        components.security_scheme(
            "bearerAuth",
            {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token (`crm token create`), shown once when made.",
            },
        )
        components.security_scheme(
            "sessionCookie",
            {
                "type": "apiKey",
                "in": "cookie",
                "name": cookie_name,
                "description": "The session of a user signed in to the web UI.",
            },
        )
        components.schema("Problem", component=_PROBLEM_SCHEMA)
        for status, (name, description) in PROBLEMS.items():
            response: dict[str, Any] = {
                "description": description,
                "content": {PROBLEM_MEDIA_TYPE: {"schema": _ref("Problem")}},
            }
            if status == 401:
                response["headers"] = {
                    "WWW-Authenticate": {
                        "description": "How to authenticate (`Bearer`).",
                        "schema": {"type": "string"},
                    }
                }
            if status == 412:
                response["headers"] = {
                    "ETag": {
                        "description": "The record's current version, when it exists.",
                        "schema": {"type": "string"},
                    }
                }
            components.response(name, response)
        components.header(
            "ETag",
            {
                "description": 'The record\'s version, quoted (`"3"`): send it in `If-Match`.',
                "required": True,
                "schema": {"type": "string"},
            },
        )
        components.parameter(
            "IfMatch",
            "header",
            {
                "name": "If-Match",
                "required": True,
                "description": "The `ETag` of the version you read; the change is refused "
                "(412) if the record has moved on since.",
                "schema": {"type": "string"},
            },
        )

    # -- resources

    def add_resources(self, resources: Iterable[ApiResource]) -> None:
        """Add each resource's components and operations."""
        resources = list(resources)
        classes = [resource.schema_class(self.crm) for resource in resources]
        for resource, schema_class in zip(resources, classes, strict=True):
            if schema_class not in self._names:
                name = self._top_level_name(resource, schema_class)
                self._names[schema_class] = name
                self._reserved.update(name + suffix for suffix in ("", "Input", "Patch", "Page"))
        done: set[type[Schema]] = set()
        components = _RESOURCE_COMPONENTS.setdefault(self.spec, {})
        for resource, schema_class in zip(resources, classes, strict=True):
            name = self._names[schema_class]
            components[resource.name] = name
            if schema_class not in done:
                self._add_schema_components(name, schema_class, resource.model)
                done.add(schema_class)
            self._add_operations(resource, schema_class, name)

    def _top_level_name(self, resource: ApiResource, schema_class: type[Schema]) -> str:
        taken = set(self._names.values())
        preferred = _component_name(schema_class.__name__.removesuffix("Schema"))
        if preferred and preferred not in taken and preferred != "Problem":
            return preferred
        fallback = _component_name(re.sub(r"[_\-]+", " ", resource.name).title())
        name, counter = fallback, 1
        while name in taken or name == "Problem":
            counter += 1
            name = f"{fallback}{counter}"
        return name

    def _schema_name(self, schema: Any) -> str:
        """Name a nested schema's component: its class name without ``Schema``, made unique."""
        cls = resolve_schema_cls(schema)
        if isinstance(cls, list):  # pragma: no cover - apispec passes one schema here
            cls = cls[0]
        base = _component_name(cls.__name__.removesuffix("Schema")) or "Nested"
        taken = self._reserved | set(self.spec.components.schemas) | {"Problem"}
        name, counter = base, 1
        while name in taken:
            counter += 1
            name = f"{base}{counter}"
        self._reserved.add(name)
        return name

    def _add_schema_components(self, name: str, schema_class: type[Schema], model: Any) -> None:
        converter = self.marshmallow.converter
        assert converter is not None
        declared = schema_class().fields
        load_only = [key for key, field in declared.items() if field.load_only]

        output = converter.schema2jsonschema(schema_class(exclude=load_only))
        # What was stored passed validation once; a response shows it as it is, and
        # clients must accept fields a newly installed plugin adds.
        output.pop("required", None)  # sparse fieldsets may leave any field out
        output.pop("additionalProperties", None)
        columns = _column_nullability(model)
        for key, field in schema_class(exclude=load_only).fields.items():
            prop = output["properties"].get(field.data_key or key)
            if prop is None:
                continue
            for keyword in _INPUT_ONLY_KEYWORDS:
                prop.pop(keyword, None)
            if _nullable_in_output(key, field, columns):
                _make_nullable(prop)
        doc = _first_line(schema_class.__doc__)
        if doc:
            output["description"] = doc
        self.spec.components.schema(name, component=output)

        self.spec.components.schema(f"{name}Input", component=_input_schema(
            converter, schema_class, False, f"A new {name}: what `POST` accepts."))
        self.spec.components.schema(f"{name}Patch", component=_input_schema(
            converter, schema_class, True,
            f"A partial change to a {name}: only the fields to change."))

        self.spec.components.schema(
            f"{name}Page",
            component={
                "type": "object",
                "description": f"One page of {name} records.",
                "required": ["data", "next"],
                "properties": {
                    "data": {"type": "array", "items": _ref(name)},
                    "next": {
                        "type": ["string", "null"],
                        "format": "uri",
                        "description": "The URL of the next page; `null` on the last page.",
                    },
                },
            },
        )

    def _add_operations(self, resource: ApiResource, schema_class: type[Schema], name: str) -> None:
        tag = resource.name
        self.spec.tag(
            {"name": tag, "description": resource.description or _first_line(schema_class.__doc__)}
        )
        dump_fields = sorted(schema_class().dump_fields)
        record_id = {
            "name": "record_id",
            "in": "path",
            "required": True,
            "description": f"The id of the {resource.entity}.",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": int_bounds(resource.model.id)[1],
            },
        }
        fields_parameter = {
            "name": "fields",
            "in": "query",
            "description": "Only these fields (comma-separated); `id` always comes along.",
            "style": "form",
            "explode": False,
            "schema": {"type": "array", "items": {"type": "string", "enum": dump_fields}},
        }
        etag = {"ETag": {"$ref": "#/components/headers/ETag"}}
        record_json = {"application/json": {"schema": _ref(name)}}
        verb = resource.entity.replace("_", " ")

        collection: dict[str, Any] = {
            "get": {
                "operationId": f"{resource.name}_list",
                "tags": [tag],
                "summary": f"List {resource.name.replace('_', ' ')}",
                "description": "A page of the records the authenticated user may see, "
                "in keyset order; follow `next` for the following page.",
                "parameters": [*self._list_parameters(resource), fields_parameter],
                "responses": {
                    "200": {
                        "description": "One page of records.",
                        "content": {"application/json": {"schema": _ref(f"{name}Page")}},
                    },
                    **problem_responses(400, 401, 403),
                },
            },
            "post": {
                "operationId": f"{resource.name}_create",
                "tags": [tag],
                "summary": f"Create a {verb}",
                "description": "Validate and create one record; `Location` names it.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(f"{name}Input")}},
                },
                "responses": {
                    "201": {
                        "description": "Created.",
                        "headers": {
                            "Location": {
                                "description": "The new record's URL.",
                                "required": True,
                                "schema": {"type": "string", "format": "uri-reference"},
                            },
                            **etag,
                        },
                        "content": record_json,
                    },
                    **problem_responses(400, 401, 403, 409, 415, 422),
                },
            },
        }
        item: dict[str, Any] = {
            "get": {
                "operationId": f"{resource.name}_get",
                "tags": [tag],
                "summary": f"Get a {verb}",
                "description": "One record, with its version as `ETag`.",
                "parameters": [
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "description": "An `ETag` you have: 304 if the record is still at it.",
                        "schema": {"type": "string"},
                    },
                    fields_parameter,
                ],
                "responses": {
                    "200": {"description": "The record.", "headers": etag, "content": record_json},
                    "304": {"description": "Not modified since the `ETag` sent.", "headers": etag},
                    **problem_responses(400, 401, 403, 404),
                },
            },
            "patch": {
                "operationId": f"{resource.name}_update",
                "tags": [tag],
                "summary": f"Change a {verb}",
                "description": "A partial update: only the fields sent change. `If-Match` "
                "must name the version you read.",
                "parameters": ["IfMatch"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(f"{name}Patch")}},
                },
                "responses": {
                    "200": {
                        "description": "The changed record.",
                        "headers": etag,
                        "content": record_json,
                    },
                    **problem_responses(400, 401, 403, 404, 409, 412, 415, 422, 428),
                },
            },
            "delete": {
                "operationId": f"{resource.name}_archive",
                "tags": [tag],
                "summary": f"Archive a {verb}",
                "description": "Archive the record: it leaves lists but keeps its history "
                "and can be restored. `If-Match` must name the version you read.",
                "parameters": ["IfMatch"],
                "responses": {
                    "204": {"description": "Archived (or already archived).", "headers": etag},
                    **problem_responses(401, 403, 404, 409, 412, 422, 428),
                },
            },
        }
        self.spec.path(path=f"/{resource.name}", operations=collection)
        self.spec.path(
            path=f"/{resource.name}/{{record_id}}", operations=item, parameters=[record_id]
        )
        if hasattr(resource.service, "restore"):
            restore = {
                "operationId": f"{resource.name}_restore",
                "tags": [tag],
                "summary": f"Restore an archived {verb}",
                "description": "Bring an archived record back into lists. `If-Match` "
                "must name the version you read.",
                "parameters": ["IfMatch"],
                "responses": {
                    "204": {"description": "Restored (or was not archived).", "headers": etag},
                    **problem_responses(401, 403, 404, 409, 412, 422, 428),
                },
            }
            self.spec.path(
                path=f"/{resource.name}/{{record_id}}/restore",
                operations={"post": restore},
                parameters=[record_id],
            )

        history = {
            "operationId": f"{resource.name}_history",
            "tags": [tag],
            "summary": f"History of a {verb}",
            "description": "Who changed which field from what to what, when, and through "
            "which channel (`api`, `ui`, `import`, `cli`, a plugin), newest first. Needs "
            "`audit.view` as well.",
            "parameters": history_parameters(),
            "responses": {
                "200": {
                    "description": "One page of the record's history.",
                    "content": {
                        "application/json": {
                            "schema": page_of(
                                schema_ref(self.spec, HistoryEntryOut), "A page of changes."
                            )
                        }
                    },
                },
                **problem_responses(400, 401, 403, 404),
            },
        }
        self.spec.path(
            path=f"/{resource.name}/{{record_id}}/history",
            operations={"get": history},
            parameters=[record_id],
        )

    def _list_parameters(self, resource: ApiResource) -> list[dict[str, Any]]:
        sort_keys = sorted(resource.sorts)
        parameters: list[dict[str, Any]] = [
            {
                "name": "limit",
                "in": "query",
                "description": f"Records per page, 1 to {MAX_LIMIT}.",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_LIMIT,
                    "default": DEFAULT_LIMIT,
                },
            },
            {
                "name": "cursor",
                "in": "query",
                "description": "Where to continue: taken from a page's `next` link, made for "
                "the same `sort`.",
                "schema": {"type": "string"},
            },
            {
                "name": "sort",
                "in": "query",
                "description": "The sort key; prefix `-` for descending. Ties are broken by id.",
                "schema": {
                    "type": "string",
                    "enum": [*sort_keys, *(f"-{key}" for key in sort_keys)],
                    "default": resource.default_sort,
                },
            },
        ]
        if hasattr(resource.model, "archived"):
            parameters.append(
                {
                    "name": "archived",
                    "in": "query",
                    "description": "`false` (default): active records; `true`: archived "
                    "ones; `any`: both.",
                    "schema": {
                        "type": "string",
                        "enum": ["false", "true", "any"],
                        "default": "false",
                    },
                }
            )
        for name, target in resource.filters.items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "description": _filter_description(name, target),
                    "schema": _filter_schema(target),
                }
            )
        return parameters


def limit_parameter(maximum: int = MAX_LIMIT, default: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The ``limit`` query parameter: how many items per page."""
    return {
        "name": "limit",
        "in": "query",
        "description": f"Items per page, 1 to {maximum}.",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    }


def history_parameters() -> list[dict[str, Any]]:
    """``limit`` and ``before_id``: the parameters of a history or audit page."""
    return [
        limit_parameter(),
        {
            "name": "before_id",
            "in": "query",
            "description": "Entries older than this audit entry id (from a page's `next`).",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        },
    ]


# -- schema helpers --------------------------------------------------------------------------

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error, as RFC 9457 problem details.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri-reference",
            "description": f"What kind of problem: `{PROBLEM_TYPE}<kind>`, e.g. "
            f"`{PROBLEM_TYPE}validation`.",
        },
        "title": {"type": "string", "description": "A short summary of the kind of problem."},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong this time."},
        "instance": {
            "type": "string",
            "format": "uri-reference",
            "description": "The path of the request.",
        },
        "errors": {
            "type": "object",
            "description": "Messages by field (a list of strings, or an object for a nested "
            "field: list items by index, attributes by name).",
            "additionalProperties": True,
        },
    },
}


def _input_schema(
    converter: Any, schema_class: type[Schema], partial: bool, description: str
) -> dict[str, Any]:
    """``schema_class`` as a write's body: no read-only fields; ``partial``: none required."""
    dump_only = [key for key, field in schema_class().fields.items() if field.dump_only]
    body: dict[str, Any] = converter.schema2jsonschema(
        schema_class(exclude=dump_only, partial=partial)
    )
    if partial:
        body.pop("required", None)
    body["description"] = description
    return body


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _component_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "", text)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ").strip()


def _crm_field_notes(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """Explain what crm-core's input field types accept beyond their JSON type."""
    if _is_decimal_string(field):
        return _decimal_notes(field)
    notes = {
        Tags: "A list of tags (a comma-separated string is accepted too); stored stripped, "
        "without duplicates, sorted.",
        Website: "A web address; `www.acme.com` is accepted and stored as `https://www.acme.com`.",
        EmailAddress: "An email address, stored in lower case.",
        PhoneNumber: "A phone number as people write it: digits, spaces, `+ ( ) - . /` and "
        "an extension.",
        CountryCode: "An ISO 3166-1 alpha-2 country code, stored upper-case (`de` -> `DE`).",
    }
    if "description" in field.metadata:
        return {}
    for cls, note in notes.items():
        if isinstance(field, cls):
            return {"description": note}
    if isinstance(field, Text) and type(field).__name__ in ("Text", "RequiredText"):
        return {"description": "Text; leading and trailing spaces are removed."}
    return {}


def _json_number(value: Any) -> Any:
    """A :class:`~decimal.Decimal` bound as the JSON number it stands for."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _is_decimal_string(field: fields.Field) -> bool:
    return isinstance(field, fields.Decimal) and bool(field.as_string)


def _decimal_notes(field: fields.Decimal) -> dict[str, Any]:
    """The pattern and description of an exact decimal sent as a string: its decimal
    places and its bounds, written as the API writes values (strings)."""
    quantum = field.places  # Decimal("0.01") for places=2
    places = None if quantum is None else max(0, -int(quantum.as_tuple().exponent))
    example = f"{Decimal('12.5'):.{1 if places is None else places}f}"
    if places is None:
        note = f'An exact decimal number as a string (`"{example}"`).'
    else:
        note = f'An exact decimal number as a string with {places} decimal places (`"{example}"`).'
    bounds = _decimal_bounds(field)
    if bounds:
        note = f"{note[:-1]}; {bounds}."
    own = field.metadata.get("description")
    notes: dict[str, Any] = {"description": f"{own.rstrip()} {note}" if own else note}
    if places is not None:
        notes["pattern"] = rf"^-?[0-9]+(\.[0-9]{{1,{places}}})?$" if places else r"^-?[0-9]+$"
    return notes


def _decimal_bounds(field: fields.Decimal) -> str:
    """``from "0.00" to "99.00"``, ``at least "0.00"``...: the field's ranges, as strings."""
    ranges = [v for v in field.validators if isinstance(v, validate.Range)]
    lows = [(v.min, v.min_inclusive) for v in ranges if v.min is not None]
    highs = [(v.max, v.max_inclusive) for v in ranges if v.max is not None]
    low = max(lows, key=lambda bound: (bound[0], not bound[1])) if lows else None
    high = min(highs, key=lambda bound: (bound[0], bound[1])) if highs else None

    def shown(value: Any) -> str:
        return f'`"{field._serialize(value, None, None)}"`'

    if low and high and low[1] and high[1]:
        return f"from {shown(low[0])} to {shown(high[0])}"
    parts = []
    if low:
        parts.append(f"{'at least' if low[1] else 'more than'} {shown(low[0])}")
    if high:
        parts.append(f"{'at most' if high[1] else 'less than'} {shown(high[0])}")
    return " and ".join(parts)


def _column_nullability(model: Any) -> dict[str, bool]:
    try:
        mapper = sql_inspect(model)
    except Exception:
        return {}
    return {column.key: bool(column.nullable) for column in mapper.columns}


def _nullable_in_output(name: str, field: fields.Field, columns: Mapping[str, bool]) -> bool:
    """Whether a dumped record may carry ``null`` for ``name``.

    A NOT NULL column never does; lists and nested objects that are not columns (tags,
    emails) are always sent as lists or objects; other values may be missing.
    """
    if field.allow_none:
        return True
    attribute = field.attribute or name
    if attribute in columns:
        return columns[attribute]
    return not isinstance(field, fields.List | fields.Nested | fields.Dict)


def _make_nullable(prop: dict[str, Any]) -> None:
    if "$ref" in prop:
        ref = prop.pop("$ref")
        prop["anyOf"] = [{"$ref": ref}, {"type": "null"}]
        return
    if "anyOf" in prop:
        if {"type": "null"} not in prop["anyOf"]:
            prop["anyOf"].append({"type": "null"})
        return
    if "type" in prop:
        types = [prop["type"]] if isinstance(prop["type"], str) else list(prop["type"])
        if "null" not in types:
            prop["type"] = [*types, "null"]
    if "enum" in prop and None not in prop["enum"]:
        prop["enum"] = [*prop["enum"], None]


def _filter_schema(target: Any) -> dict[str, Any]:
    if callable(target) and not hasattr(target, "key"):
        return {"type": "string"}
    python_type = python_type_of(target)
    if python_type is bool:
        return {"type": "boolean"}
    if python_type is int:
        low, high = int_bounds(target)
        return {"type": "integer", "minimum": low, "maximum": high}
    if python_type is float:
        return {"type": "number"}
    import datetime as dt

    if python_type is dt.datetime:
        return {"type": "string", "format": "date-time"}
    if python_type is dt.date:
        return {"type": "string", "format": "date"}
    return {"type": "string"}


def _filter_description(name: str, target: Any) -> str:
    doc = getattr(target, "__doc__", None) if callable(target) else None
    if doc and callable(target) and not hasattr(target, "key"):
        text = _first_line(doc)
        if text and not text.startswith(("Return", "Create a new function")):
            return text
    return f"Only records whose `{name}` is this value."


# -- the docs page ------------------------------------------------------------------------------

_METHODS = ("get", "post", "put", "patch", "delete")


def docs_context(document: Mapping[str, Any]) -> dict[str, Any]:
    """What ``crm_core/api_docs.html`` shows, read from an OpenAPI ``document``.

    Operations are grouped by resource (tag); types come as ready HTML with links to
    the schemas, descriptions with their `code` spans rendered.
    """
    components = document.get("components", {})
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in document.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            view = _operation_view(path, method, shared, operation, components)
            for tag in operation.get("tags") or ["other"]:
                groups.setdefault(tag, []).append(view)
    tags = {tag["name"]: tag for tag in document.get("tags", [])}
    resources = [
        {
            "name": name,
            "anchor": _anchor("resource", name),
            "description": _inline(tags.get(name, {}).get("description", "")),
            "operations": operations,
        }
        for name, operations in groups.items()
    ]
    schemas = [_schema_view(name, schema) for name, schema in components.get("schemas", {}).items()]
    schemes = [
        {
            "name": name,
            "type": scheme.get("type"),
            "scheme": scheme.get("scheme"),
            "where": scheme.get("in"),
            "param": scheme.get("name"),
            "description": _inline(scheme.get("description", "")),
        }
        for name, scheme in components.get("securitySchemes", {}).items()
    ]
    problems = [
        {"status": status, "name": name, "description": _inline(description)}
        for status, (name, description) in PROBLEMS.items()
    ]
    info = document.get("info", {})
    return {
        "title": info.get("title", "API"),
        "version": info.get("version", ""),
        "openapi_version": document.get("openapi", ""),
        "server": (document.get("servers") or [{"url": ""}])[0]["url"],
        "resources": resources,
        "schemas": schemas,
        "security_schemes": schemes,
        "problems": problems,
        "problem_type": PROBLEM_TYPE,
        "max_limit": MAX_LIMIT,
        "default_limit": DEFAULT_LIMIT,
    }


def _operation_view(
    path: str,
    method: str,
    shared: list[dict[str, Any]],
    operation: Mapping[str, Any],
    components: Mapping[str, Any],
) -> dict[str, Any]:
    parameters = []
    for parameter in [*shared, *operation.get("parameters", [])]:
        parameter = _resolve(parameter, components)
        schema = parameter.get("schema", {})
        parameters.append(
            {
                "name": parameter["name"],
                "where": parameter["in"],
                "required": bool(parameter.get("required")),
                "type": _type_html(schema),
                "constraints": _constraints(schema),
                "description": _inline(parameter.get("description", "")),
            }
        )
    body = None
    request_body = operation.get("requestBody")
    if request_body:
        media_type, content = next(iter(request_body["content"].items()))
        body = {"media_type": media_type, "type": _type_html(content.get("schema", {}))}
    responses = []
    for status, response in operation.get("responses", {}).items():
        response = _resolve(response, components)
        content = response.get("content", {})
        media_type = next(iter(content), "")
        headers = [
            {
                "name": name,
                "description": _inline(_resolve(header, components).get("description", "")),
            }
            for name, header in response.get("headers", {}).items()
        ]
        responses.append(
            {
                "status": status,
                "description": _inline(response.get("description", "")),
                "media_type": media_type,
                "type": _type_html(content[media_type].get("schema", {})) if media_type else "",
                "headers": headers,
            }
        )
    return {
        "method": method.upper(),
        "path": path,
        "anchor": _anchor("op", operation.get("operationId") or f"{method}{path}"),
        "summary": operation.get("summary", ""),
        "description": _inline(operation.get("description", "")),
        "parameters": parameters,
        "body": body,
        "responses": responses,
    }


def _schema_view(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    required = set(schema.get("required", []))
    properties = [
        {
            "name": key,
            "type": _type_html(prop),
            "required": key in required,
            "read_only": bool(prop.get("readOnly")),
            "write_only": bool(prop.get("writeOnly")),
            "constraints": _constraints(prop),
            "description": _inline(prop.get("description", "")),
        }
        for key, prop in schema.get("properties", {}).items()
    ]
    return {
        "name": name,
        "anchor": _anchor("schema", name),
        "description": _inline(schema.get("description", "")),
        "properties": properties,
        "closed": schema.get("additionalProperties") is False,
    }


def _resolve(value: Mapping[str, Any], components: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = value.get("$ref") if isinstance(value, Mapping) else None
    if not ref or not ref.startswith("#/components/"):
        return value
    _, _, kind, name = ref.split("/", 3)
    return components.get(kind, {}).get(name, {})


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _inline(text: str) -> Markup:
    """Escape ``text``, then render its `code` spans and **strong** parts."""
    html = str(escape(text))
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    html = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
    return Markup(html)


def _type_html(schema: Mapping[str, Any]) -> Markup:
    """A short, linked description of a JSON Schema's type: ``array of Customer``..."""
    if not schema:
        return Markup("any")
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return Markup('<a href="#{}">{}</a>').format(_anchor("schema", name), name)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            joiner = " and " if key == "allOf" else " or "
            return Markup(joiner).join(_type_html(part) for part in schema[key])
    types = schema.get("type", "any")
    types = [types] if isinstance(types, str) else list(types)
    parts = []
    for name in types:
        if name == "array":
            parts.append(Markup("array of {}").format(_type_html(schema.get("items", {}))))
        elif name == "object" and isinstance(schema.get("additionalProperties"), Mapping):
            inner = _type_html(schema["additionalProperties"])
            parts.append(Markup("object of {}").format(inner))
        elif schema.get("format") and name != "null":
            parts.append(Markup("{} ({})").format(name, schema["format"]))
        else:
            parts.append(Markup("{}").format(name))
    return Markup(" or ").join(parts)


def _constraints(schema: Mapping[str, Any]) -> list[Markup]:
    """Limits worth telling a client: allowed values, lengths, ranges, defaults."""
    found: list[Markup] = []
    enum = schema.get("enum") or schema.get("items", {}).get("enum")
    if enum:
        values = ", ".join("null" if value is None else str(value) for value in enum)
        found.append(_inline(f"one of: `{values}`" if len(values) < 200 else "see the schema"))
    for key, label in (
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minimum", "at least {}"),
        ("maximum", "at most {}"),
        ("pattern", "matches `{}`"),
    ):
        if key in schema and not (key in ("minimum", "maximum") and abs(schema[key]) >= 2**31 - 1):
            found.append(_inline(label.format(schema[key])))
    if "default" in schema:
        found.append(_inline(f"default `{json.dumps(schema['default'])}`"))
    return found


# -- the routes ---------------------------------------------------------------------------------

docs_blueprint = Blueprint(
    "crm_api_docs", __name__, template_folder=str(Path(__file__).parent.parent / "templates")
)


@docs_blueprint.get("/openapi.json")
def openapi_json() -> Response:
    """``GET /api/v1/openapi.json``: the OpenAPI 3.1 document (public)."""
    document = openapi_document(current_app)
    return Response(json.dumps(document), mimetype="application/json")


@docs_blueprint.get("/docs")
def api_docs() -> str:
    """``GET /api/v1/docs``: the API reference as one HTML page, no scripts (public)."""
    return render_template("crm_core/api_docs.html", **docs_context(openapi_document(current_app)))
