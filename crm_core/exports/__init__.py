"""Exports of customers, contacts, interactions and plugins' records; the complete dump.

``prepare_export(crm, "contacts", "csv", actor=user).write(file)`` writes what the
user may see, streamed in batches (:mod:`crm_core.exports.sources`); ``crm export``
and ``GET /api/v1/exports/<name>.<format>`` go through it. The dump of every table,
and restoring it, are in :mod:`crm_core.exports.dump`. See ``docs/export.md``.
"""

from crm_core.exports.formats import EXTENSIONS, FORMATS, Format, format_for_path
from crm_core.exports.runner import (
    Export,
    ExportError,
    atomic_file,
    available_exports,
    export_to_path,
    prepare_export,
)
from crm_core.exports.sources import Source, export_sources

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "Export",
    "ExportError",
    "Format",
    "Source",
    "atomic_file",
    "available_exports",
    "export_sources",
    "export_to_path",
    "format_for_path",
    "prepare_export",
]
