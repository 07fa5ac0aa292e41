"""Deals in the UI: the pipeline board, the list, the deal's page, its forms, and its slots.

One module per job; the five that add views or slot functions are parts of their own
(listed in :data:`crm_sales.web.PARTS`, in this order), the other two are helpers:

- :mod:`.board`: the board (``/sales/board``), moving a deal to a stage, archiving and
  restoring it, and the conflict page of those writes.
- :mod:`.listing`: the deals list (``/sales/deals``).
- :mod:`.page`: the deal's page (``/sales/deals/<id>``) with its stage history.
- :mod:`.forms`: the create and edit forms (``/sales/deals/new``, ``/sales/deals/<id>/edit``).
- :mod:`.slots`: the *Deals* navigation entry, the customer's *Open deals* panel and
  *Deals* tab, the dashboard's *My open deals*, and the timeline entries of stage changes
  with their renderer.
- :mod:`.form_data` (helper): the deal form's fields and rows, read from a post and from a
  stored deal, its errors and its conflict table.
- :mod:`.common` (helper): what several of them share: status and role names, weighted
  amounts, the deal columns and queries lists and cards read, request and form parsing.

Every write goes through :mod:`crm_sales.services.opportunities`.
"""
