"""A plugin's ``/api/v1`` routes and whether the OpenAPI document describes each of them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask
from werkzeug.routing import Rule

from crm_core.web.api import PREFIX

#: The endpoints :meth:`crm_core.web.api.ApiResource.register` adds, by suffix.
RESOURCE_ENDPOINTS = ("list", "create", "get", "update", "archive", "restore", "history")
#: Core's API blueprint, which mounts every ApiResource.
API_BLUEPRINT = "crm_api"


def plugin_api_rules(app: Flask, blueprints: Iterable[str], resources: Iterable[str]
                     ) -> list[Rule]:
    """The rules under ``/api/v1`` of the ``blueprints`` and ApiResources ``resources``."""
    names = tuple(f"{name}." for name in blueprints)
    endpoints = {f"{API_BLUEPRINT}.{resource}_{kind}" for resource in resources
                 for kind in RESOURCE_ENDPOINTS}
    return sorted(
        (rule for rule in app.url_map.iter_rules()
         if rule.endpoint in endpoints
         or (rule.endpoint.startswith(names) and rule.rule.startswith(PREFIX + "/"))),
        key=lambda rule: (rule.rule, rule.endpoint),
    )


def openapi_path(rule: Rule) -> str:
    """The OpenAPI path of ``rule``: ``/sales/deals/{deal_id}`` for
    ``/api/v1/sales/deals/<int:deal_id>``."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix(PREFIX))


def undocumented(rules: Iterable[Rule], document: Mapping[str, Any]) -> list[str]:
    """Each method of ``rules`` the OpenAPI ``document`` lacks, or whose path parameters
    it does not describe."""
    missing = []
    for rule in rules:
        item = document.get("paths", {}).get(openapi_path(rule), {})
        shared = {parameter.get("name") for parameter in item.get("parameters", [])
                  if isinstance(parameter, dict)}
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = item.get(method.lower())
            if operation is None:
                missing.append(f"{method} {rule.rule} (endpoint {rule.endpoint})")
                continue
            names = shared | {parameter.get("name") for parameter
                              in operation.get("parameters", []) if isinstance(parameter, dict)}
            lacking = sorted(set(rule.arguments) - names)
            if lacking:
                missing.append(f"{method} {rule.rule}: path parameters {lacking} undescribed")
    return missing
