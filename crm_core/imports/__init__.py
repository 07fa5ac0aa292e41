"""Importing customers, contacts and interactions from CSV files, and contacts from vCards.

Every import goes through the services' bulk path (validation, ``crm_validate``
hooks, audit, outbox, ``crm_on_*`` hooks), in batches of one transaction each; see
``docs/import.md``. The CLI (``crm import``) and the API (``POST /api/v1/imports``)
both create an :class:`~crm_core.models.ImportJob` and run it with
:func:`run_import_job` (the API through the task queue, job ``crm_core.import``).
A dry run keeps its uploaded file for a day; :func:`rerun` runs it again as a new job.

A plugin's :class:`~crm_core.extensions.Importer` with ``run`` is imported the same way
(``crm import <name>``, the API, the ``/imports`` page, the same jobs): core calls
``run`` with an :class:`ImportContext` and writes what it reports to the job.
"""

from crm_core.imports.context import ImportContext, run_importer
from crm_core.imports.jobs import (
    JOB_NAME,
    KEEP_DRY_RUN_FILE,
    RerunError,
    create_job,
    find_mapping,
    kept_file,
    options_from_mapping,
    prune_kept_files,
    report_lines,
    rerun,
    run_import_job,
    save_mapping,
    write_report,
)
from crm_core.imports.mapping import (
    MappingError,
    import_permission,
    plugin_importer,
    plugin_importers,
    resolve_mapping,
)
from crm_core.imports.reading import CsvSource, RawRow, ReadError
from crm_core.imports.runner import (
    ImportOptions,
    ImportRunner,
    ImportSummary,
    Rejection,
    format_for,
    run_import,
)
from crm_core.imports.summary import message_texts

__all__ = [
    "JOB_NAME",
    "KEEP_DRY_RUN_FILE",
    "CsvSource",
    "ImportContext",
    "ImportOptions",
    "ImportRunner",
    "ImportSummary",
    "MappingError",
    "RawRow",
    "ReadError",
    "Rejection",
    "RerunError",
    "create_job",
    "find_mapping",
    "format_for",
    "import_permission",
    "kept_file",
    "message_texts",
    "options_from_mapping",
    "plugin_importer",
    "plugin_importers",
    "prune_kept_files",
    "report_lines",
    "rerun",
    "resolve_mapping",
    "run_import",
    "run_import_job",
    "run_importer",
    "save_mapping",
    "write_report",
]
