"""crm-core's conformance suite: what core expects of every plugin."""

from crm_core.conformance import PluginConformance


class TestConformance(PluginConformance):
    plugin = "crm_nps"
