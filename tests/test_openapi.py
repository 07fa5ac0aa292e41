"""The OpenAPI 3.1 document, the API docs page, and schemathesis against the live app.

The document is validated against the OpenAPI 3.1 meta-schema; then schemathesis
generates requests from it (valid ones, invalid ones, and valid ones aimed at records
that exist, with their current ``ETag``) and checks that the app never answers 5xx
and that every answer matches the document: status code, content type, headers and
body schema.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import time
import warnings
from decimal import Decimal
from typing import Any

import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from marshmallow import Schema, fields, validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crm_core.models import Customer, Role, User
from crm_core.schemas.fieldtypes import RequiredText, Tags
from crm_core.services import contacts, customers, interactions, tokens
from crm_core.testing import plugin_module as _plugin
from crm_core.web.api import ApiResource
from crm_core.web.api.openapi import (
    EXTENSION_KEY,
    add_openapi_contributor,
    build_openapi,
    problem_responses,
    schema_ref,
)

pytestmark = pytest.mark.plugins()

PREFIX = "/api/v1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Examples per operation and generation mode: bounded, so the whole run stays well under
#: a minute per backend. ``CRM_SCHEMATHESIS_EXAMPLES=200`` fuzzes deeper, by hand.
MAX_EXAMPLES = int(os.environ.get("CRM_SCHEMATHESIS_EXAMPLES", "12"))


# -- plugins that extend the schemas and add a resource --------------------------------------------

#: A plugin's schema that happens to share its class name with core's customer schema.
PluginCustomerSchema = type(
    "CustomerSchema",
    (Schema,),
    {
        "__doc__": "A customer as the VIP plugin shows it.",
        "id": fields.Integer(dump_only=True),
        "name": RequiredText(max_length=300),
        "tags": Tags(load_default=list),
        "version": fields.Integer(dump_only=True),
        "archived": fields.Boolean(dump_only=True),
    },
)

VIP = ApiResource(
    name="vip_customers",
    entity="customer",
    model=Customer,
    service=customers,
    schema=PluginCustomerSchema,
    filters={"tag": lambda tag: Customer.tag_rows.any(tag=tag)},
    sorts={"name": Customer.name},
    default_sort="name",
    description="The VIP plugin's view of customers.",
)




def _schema_fields(entity: str) -> dict[str, fields.Field] | None:
    if entity != "customer":
        return None
    return {
        "loyalty_tier": fields.String(
            allow_none=True,
            validate=validate.OneOf(["gold", "silver"]),
            metadata={"description": "The VIP plugin's loyalty tier."},
        )
    }


VIP_PLUGIN = _plugin(
    "crm_test_vip", crm_register_api_resources=lambda: [VIP], crm_schema_fields=_schema_fields
)


@pytest.fixture
def crm_plugin_modules() -> list[Any]:
    """The VIP plugin: a field on customers and a resource of its own."""
    return [VIP_PLUGIN]


@pytest.fixture
def crm_settings_overrides() -> dict[str, Any]:
    """Custom attributes, so the document must describe them."""
    return {
        "custom_attributes": {
            "customer.vat_id": {"type": "string", "label": "VAT id"},
            "customer.segment": {"type": "choice", "choices": ["smb", "enterprise"]},
            "contact.shoe_size": {"type": "integer"},
        }
    }


@pytest.fixture
def document(client: Any) -> dict[str, Any]:
    """The document as a client fetches it: anonymously."""
    response = client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


# -- the document ----------------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()  # raises on any violation
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_the_document_is_built_once_per_app_and_without_warnings(app, client):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. apispec's "Multiple schemas resolved to the name"
        build_openapi(app)
    client.get(f"{PREFIX}/openapi.json")
    cached = app.extensions[EXTENSION_KEY]
    client.get(f"{PREFIX}/openapi.json")
    assert app.extensions[EXTENSION_KEY] is cached


def test_every_resource_has_every_operation(document, app):
    paths = document["paths"]
    assert document["servers"] == [{"url": PREFIX, "description": "This installation"}]
    for name, resource in app.extensions["crm_api_resources"].items():
        assert set(paths[f"/{name}"]) == {"get", "post"}, name
        assert set(paths[f"/{name}/{{record_id}}"]) >= {"get", "patch", "delete"}, name
        assert (f"/{name}/{{record_id}}/restore" in paths) == hasattr(resource.service, "restore")
        operation_ids = {
            operation["operationId"]
            for item in paths.values()
            for method, operation in item.items()
            if method != "parameters"
        }
        assert {f"{name}_list", f"{name}_create", f"{name}_get"} <= operation_ids


def test_list_parameters_sort_enum_filters_and_fields(document):
    listing = document["paths"]["/customers"]["get"]
    parameters = {p["name"]: p for p in listing["parameters"]}
    assert {"limit", "cursor", "sort", "fields", "archived"} <= set(parameters)
    assert {"owner_id", "lifecycle_stage", "email", "phone", "tag"} <= set(parameters)
    assert parameters["limit"]["schema"] == {
        "type": "integer", "minimum": 1, "maximum": 500, "default": 50
    }
    assert parameters["sort"]["schema"]["enum"] == ["id", "name", "-id", "-name"]
    assert parameters["sort"]["schema"]["default"] == "name"
    assert parameters["owner_id"]["schema"]["type"] == "integer"
    assert parameters["archived"]["schema"]["enum"] == ["false", "true", "any"]
    sparse = parameters["fields"]
    assert sparse["style"] == "form" and sparse["explode"] is False
    assert {"name", "loyalty_tier", "attributes"} <= set(sparse["schema"]["items"]["enum"])
    page = document["components"]["schemas"]["CustomerPage"]
    assert page["properties"]["data"]["items"] == {"$ref": "#/components/schemas/Customer"}
    interactions_sort = {
        p["name"]: p for p in document["paths"]["/interactions"]["get"]["parameters"]
    }["sort"]["schema"]
    assert interactions_sort["default"] == "-occurred_at"


def test_write_operations_document_bodies_headers_and_preconditions(document):
    create = document["paths"]["/contacts"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ContactInput"
    }
    created = create["responses"]["201"]
    assert created["headers"]["Location"]["required"] is True
    assert created["headers"]["ETag"] == {"$ref": "#/components/headers/ETag"}
    assert {"400", "401", "403", "415", "422"} <= set(create["responses"])
    item = document["paths"]["/contacts/{record_id}"]
    assert item["parameters"][0]["in"] == "path"
    assert "304" in item["get"]["responses"]
    assert any(p["name"] == "If-None-Match" for p in item["get"]["parameters"])
    for method in ("patch", "delete"):
        assert item[method]["parameters"] == [{"$ref": "#/components/parameters/IfMatch"}]
        assert {"409", "412", "428"} <= set(item[method]["responses"])
    assert item["patch"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ContactPatch"
    }
    assert "204" in item["delete"]["responses"]
    assert document["components"]["parameters"]["IfMatch"]["required"] is True


def test_errors_are_problem_documents(document):
    components = document["components"]
    problem = components["schemas"]["Problem"]
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "instance", "errors"}
    for name, response in components["responses"].items():
        assert set(response["content"]) == {"application/problem+json"}, name
        assert response["content"]["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response["$ref"].startswith("#/components/responses/"), (path, status)


def test_security_schemes_bearer_and_session_cookie(document, app):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http" and schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["sessionCookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": app.config["SESSION_COOKIE_NAME"],
        "description": schemes["sessionCookie"]["description"],
    }
    assert document["security"] == [{"bearerAuth": []}, {"sessionCookie": []}]


def test_schemas_read_plugin_fields_custom_attributes_and_nested_schemas(document):
    schemas = document["components"]["schemas"]
    customer, customer_in, patch = (
        schemas["Customer"], schemas["CustomerInput"], schemas["CustomerPatch"]
    )
    # Dump mode: read-only fields, nulls where the column allows them, no input limits.
    assert customer["properties"]["id"] == {"type": "integer", "readOnly": True}
    assert customer["properties"]["merged_into_id"]["type"] == ["integer", "null"]
    assert customer["properties"]["name"]["type"] == "string"
    assert "maxLength" not in customer["properties"]["name"]
    assert "required" not in customer
    # Load mode: no read-only fields, required fields, unknown fields refused.
    assert "id" not in customer_in["properties"] and "version" not in customer_in["properties"]
    assert customer_in["required"] == ["name"]
    assert customer_in["additionalProperties"] is False
    assert customer_in["properties"]["name"]["maxLength"] == 300
    assert "required" not in patch and set(patch["properties"]) == set(customer_in["properties"])
    # Field types of crm-core's own field classes.
    props = customer_in["properties"]
    assert props["email"]["format"] == "email" and props["email"]["type"] == ["string", "null"]
    assert props["website"]["format"] == "uri"
    assert props["tags"]["type"] == "array" and props["tags"]["items"]["type"] == "string"
    assert "comma-separated" in props["tags"]["description"]
    assert props["country"]["pattern"] == "^[A-Z]{2}$"
    assert props["kind"]["enum"] == ["company", "person"]
    # A plugin's field, and the deployment's custom attributes.
    assert props["loyalty_tier"]["enum"] == ["gold", "silver", None]
    assert props["loyalty_tier"]["description"] == "The VIP plugin's loyalty tier."
    assert props["attributes"] == {"$ref": "#/components/schemas/CustomerAttributes"}
    attributes = schemas["CustomerAttributes"]
    assert set(attributes["properties"]) == {"vat_id", "segment"}
    assert attributes["properties"]["segment"]["enum"] == ["smb", "enterprise", None]
    assert attributes["additionalProperties"] is False
    assert schemas["ContactAttributes"]["properties"]["shoe_size"]["type"] == ["integer", "null"]
    # Nested schemas are components of their own.
    contact = schemas["ContactInput"]["properties"]
    assert contact["emails"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/ContactEmail"}
    }
    assert schemas["ContactEmail"]["required"] == ["email"]
    assert schemas["ContactPhone"]["properties"]["number"]["type"] == "string"


def test_schema_names_do_not_collide(document):
    schemas = document["components"]["schemas"]
    # The VIP plugin's schema class is also called CustomerSchema: it gets its own name.
    vip = schemas["VipCustomers"]
    assert set(vip["properties"]) == {"id", "name", "tags", "version", "archived"}
    assert "loyalty_tier" in schemas["Customer"]["properties"]
    listing = document["paths"]["/vip_customers"]["get"]["responses"]["200"]
    assert listing["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/VipCustomersPage"
    }


def test_contributors_add_operations(app, client):
    def contribute(spec: Any) -> None:
        spec.path(
            path="/ping",
            operations={
                "get": {
                    "operationId": "ping",
                    "responses": {"204": {"description": "Pong."}, **problem_responses(401)},
                }
            },
        )

    add_openapi_contributor(app, contribute)
    document = client.get(f"{PREFIX}/openapi.json").get_json()
    assert document["paths"]["/ping"]["get"]["responses"]["401"] == {
        "$ref": "#/components/responses/Unauthorized"
    }


class PriceSchema(Schema):
    """A price: exact decimals sent as strings, and one sent as a number."""

    amount = fields.Decimal(
        places=2,
        as_string=True,
        required=True,
        validate=[validate.Range(min=0), validate.Range(max=Decimal("1000"))],
    )
    discount = fields.Decimal(
        places=3,
        as_string=True,
        allow_none=True,
        validate=validate.Range(min=0, max=100, max_inclusive=False),
        metadata={"description": "Percent off."},
    )
    ratio = fields.Decimal(as_string=True)
    weight = fields.Decimal(places=1, validate=validate.Range(min=Decimal("0.5"), max=10))


def test_decimals_sent_as_strings_are_described_as_strings(app, client):
    def contribute(spec: Any) -> None:
        spec.path(
            path="/prices",
            operations={
                "post": {
                    "operationId": "prices_create",
                    "requestBody": {"content": {"application/json": {
                        "schema": schema_ref(spec, PriceSchema, "PriceInput", output=False)
                    }}},
                    "responses": {"204": {"description": "Taken."}},
                }
            },
        )

    add_openapi_contributor(app, contribute)
    document = client.get(f"{PREFIX}/openapi.json").get_json()
    schemathesis.openapi.from_dict(document).validate()  # no string bounds
    props = document["components"]["schemas"]["PriceInput"]["properties"]
    amount, discount, ratio = props["amount"], props["discount"], props["ratio"]
    assert (amount["type"], amount["format"]) == ("string", "decimal")
    assert not {"minimum", "maximum", "exclusiveMaximum"} & (set(amount) | set(discount))
    assert re.fullmatch(amount["pattern"], "12.50") and re.fullmatch(amount["pattern"], "7")
    assert not re.fullmatch(amount["pattern"], "1.234") and not re.fullmatch(amount["pattern"], "x")
    assert "2 decimal places" in amount["description"]
    assert 'from `"0.00"` to `"1000.00"`' in amount["description"]
    assert discount["type"] == ["string", "null"] and discount["format"] == "decimal"
    assert discount["description"].startswith("Percent off. An exact decimal number")
    assert 'at least `"0.000"` and less than `"100.000"`' in discount["description"]
    assert (ratio["type"], ratio["format"]) == ("string", "decimal") and "pattern" not in ratio
    # Sent as a number, a decimal stays a number, with numbers as bounds.
    assert props["weight"] == {"type": "number", "minimum": 0.5, "maximum": 10}
    # Every schema's decimal strings, core's and plugins', are described alike.
    for name, schema in document["components"]["schemas"].items():
        for key, prop in schema.get("properties", {}).items():
            if prop.get("format") == "decimal":
                assert "string" in prop["type"] and "minimum" not in prop, (name, key)


# -- the docs page ---------------------------------------------------------------------------------


def test_the_docs_page_describes_the_api_without_scripts_or_cdn(client, document):
    response = client.get(f"{PREFIX}/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    text = html.unescape(page)
    for heading in ("Authentication", "Lists: pagination", "Versions: ETag", "Errors", "Schemas"):
        assert heading in text, heading
    for path, item in document["paths"].items():
        for method in item:
            if method != "parameters":
                assert f'{method.upper()}</span> <code>{path}</code>' in page, (method, path)
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page, name
    assert "application/problem+json" in text and "If-Match" in text and "Bearer" in text
    assert "The VIP plugin's loyalty tier." in text
    assert 'href="#schema-ContactEmail"' in page  # nested schemas are linked
    assert f"{PREFIX}/openapi.json" in text


# -- schemathesis against the live app -------------------------------------------------------------


@pytest.fixture
def admin_token(crm: Any) -> str:
    """A bearer token of a user holding every permission and seeing every record."""
    with crm.unit_of_work() as uow:
        role = Role(name="fuzz-admin", permissions=sorted(crm.registry.permissions))
        user = User(email="fuzz@api.example", roles=[role])
        uow.session.add(user)
        uow.session.flush()
        _token, plain = tokens.create(uow, user, name="schemathesis")
    return plain


@pytest.fixture
def seeded(crm: Any) -> dict[str, int]:
    """One record per resource, for the requests aimed at records that exist."""
    with crm.unit_of_work() as uow:
        customer = customers.create(uow, {"name": "Seed", "tags": ["seed"], "email": "s@x.example"})
        contact = contacts.create(
            uow,
            {"last_name": "Seed", "customer_id": customer.id, "emails": [{"email": "c@x.example"}]},
        )
        interaction = interactions.create(
            uow,
            {
                "customer_id": customer.id,
                "channel": "call",
                "direction": "in",
                "occurred_at": dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC),
            },
        )
    return {
        "customers": customer.id,
        "vip_customers": customer.id,
        "contacts": contact.id,
        "interactions": interaction.id,
    }


def test_schemathesis_finds_no_server_error_and_no_nonconforming_answer(
    app, admin_token, seeded
):
    started = time.monotonic()
    schema = schemathesis.openapi.from_wsgi(f"{PREFIX}/openapi.json", app)
    schema.validate()
    client = app.test_client()
    auth = {"Authorization": f"Bearer {admin_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []
    runs = (
        (schemathesis.GenerationMode.POSITIVE, False),
        (schemathesis.GenerationMode.NEGATIVE, False),
        (schemathesis.GenerationMode.POSITIVE, True),
    )
    for operation in operations:
        for mode, existing in runs:
            if existing and "{record_id}" not in operation.path:
                continue
            try:
                _fuzz(operation, mode, existing, client=client, auth=auth, seeded=seeded)
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}, existing={existing}):\n{exc}")
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 120 * max(1, MAX_EXAMPLES // 12)


def _fuzz(
    operation: Any,
    mode: Any,
    existing: bool,
    *,
    client: Any,
    auth: dict[str, str],
    seeded: dict[str, int],
) -> None:
    """Run up to :data:`MAX_EXAMPLES` generated requests against ``operation``.

    With ``existing``, the request names a record that exists and, where the operation
    takes ``If-Match``, that record's current ``ETag``: the paths where writes succeed.
    """
    resource = operation.path.strip("/").split("/")[0]

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if existing:
            ident = seeded[resource]
            case.path_parameters = {**(case.path_parameters or {}), "record_id": ident}
            if case.headers and "If-Match" in case.headers:
                current = client.get(f"{PREFIX}/{resource}/{ident}", headers=auth)
                case.headers["If-Match"] = current.headers.get("ETag", '"0"')
        case.call_and_validate(headers=auth, checks=CHECKS)

    run()
