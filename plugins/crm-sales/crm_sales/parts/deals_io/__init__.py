"""Deals in and out of files: ``crm export opportunities`` and ``crm import opportunities``.

**Export** goes through core's ``crm_register_exporters``: the export ``opportunities``
(CSV or JSON Lines, by ``crm export``, ``GET /api/v1/exports/opportunities.csv`` and the
UI's export page) holds the deals the user sees, for holders of ``sales.deal.view``: the
scalar fields of :class:`~crm_sales.schemas.OpportunitySchema` in its order, each
reference followed by what names it (``customer``, ``pipeline``, ``stage``,
``owner_email``, ``lost_reason``), so a file exported here imports back.

**Import** goes through core's import jobs: the registered
:class:`~crm_core.extensions.Importer` ``opportunities`` has a ``run`` (:func:`run`), so
``crm import opportunities FILE``, ``POST /api/v1/imports`` with ``entity=opportunities``
and the ``/imports`` page import deals with core's job record, progress, dry runs,
reruns and report of rejected rows (by line and column), for holders of
``sales.deal.edit``. :func:`run` reads the CSV file (:class:`.reading.DealFile`, on
core's CSV reader; explicit columns over the automatic ones), resolves the references
of each batch in one query per kind (customer by ``customer_id``,
``customer.external_id``, ``customer.email`` or ``customer.name``; pipeline and stage
by name; owner by email; lost reason by name) and creates each row through
:func:`crm_sales.services.opportunities.create` in a savepoint of the batch's unit of
work, so a refused row is reported by its line and reason while the others land; each
batch's rejected rows and counts go to core through ``context.report``. A dry run rolls
every batch back.

Modules: :mod:`.export` (the export), :mod:`.reading` (a file of deals and its columns),
:mod:`.references` (the records a batch's rows name), :mod:`.importing` (the importer).
"""

from crm_sales.parts.deals_io.export import exporters
from crm_sales.parts.deals_io.importing import NAME, import_deals, importers, run

__all__ = ["NAME", "exporters", "import_deals", "importers", "run"]
