"""crm-sales as core expects a plugin to be: core's conformance suite, and what only crm-sales
promises on top of it."""

from __future__ import annotations

from crm_sales import hookspecs, web

from crm_core.conformance import PluginConformance


class TestConformance(PluginConformance):
    plugin = "crm_sales"


def test_the_published_hooks_and_blueprints_are_the_documented_ones():
    """The suite checks that names are namespaced; these are the ones docs/hooks.md and
    docs/plugins/crm-sales.md describe."""
    assert set(hookspecs.HOOKS) == {name for name in dir(hookspecs)
                                    if name.startswith("crm_sales_on_")}
    assert {web.ui.name, web.api.name} == {"crm_sales", "crm_sales_api"}
