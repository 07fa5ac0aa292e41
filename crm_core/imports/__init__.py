"""Importing customers, contacts and interactions from CSV files, and contacts from vCards.

Every import goes through the services' bulk path (validation, ``crm_validate``
hooks, audit, outbox, ``crm_on_*`` hooks), in batches of one transaction each; see
``docs/import.md``. The CLI (``crm import``) and the API (``POST /api/v1/imports``)
both create an :class:`~crm_core.models.ImportJob` and run it with
:func:`run_import_job` (the API through the task queue, job ``crm_core.import``).
"""

from crm_core.imports.jobs import (
    JOB_NAME,
    create_job,
    find_mapping,
    options_from_mapping,
    report_lines,
    run_import_job,
    save_mapping,
    write_report,
)
from crm_core.imports.mapping import MappingError, resolve_mapping
from crm_core.imports.reading import ReadError
from crm_core.imports.runner import (
    ImportOptions,
    ImportRunner,
    ImportSummary,
    Rejection,
    format_for,
    run_import,
)

__all__ = [
    "JOB_NAME",
    "ImportOptions",
    "ImportRunner",
    "ImportSummary",
    "MappingError",
    "ReadError",
    "Rejection",
    "create_job",
    "find_mapping",
    "format_for",
    "options_from_mapping",
    "report_lines",
    "resolve_mapping",
    "run_import",
    "run_import_job",
    "save_mapping",
    "write_report",
]
