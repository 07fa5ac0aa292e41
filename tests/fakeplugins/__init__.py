"""Plugin modules for edge cases of the plugin system, passed to ``CRM(plugins=[...])``.

Each module names itself with ``PLUGIN_NAME``. ``CALLS`` records hook calls of the
``order_*`` plugins, so tests can see the order pluggy calls them in.
"""

CALLS: list[str] = []
