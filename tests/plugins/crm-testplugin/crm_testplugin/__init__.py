"""crm-testplugin: a plugin that crm-core's tests install to prove the plugin system end to end.

It gives every new customer a welcome task (its own table and migration branch),
declares a permission, a channel, an export (``testplugin_tasks``) and a
``crm testplugin-tasks`` command.
"""
