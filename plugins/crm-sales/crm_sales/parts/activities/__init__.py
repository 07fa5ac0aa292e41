"""Activities and tasks in the UI and the API: the user's list, the forms, the API, the
slots and the reminders.

One module per job; the four that add views or slot functions are parts of their own
(listed in :data:`crm_sales.web.PARTS`, in this order), the other is a helper:

- :mod:`.pages`: *My activities* (``/sales/activities``): the user's open activities by
  due date (overdue, today, upcoming) and the recently done ones, with the *Done*,
  *Reopen* and delete buttons.
- :mod:`.forms`: the plan and edit forms (``/sales/activities/new``,
  ``/sales/activities/<id>/edit``), times in the installation's time zone.
- :mod:`.slots`: the *Activities* navigation entry, the dashboard's *My tasks*, the
  customer's *Next activities* panel, and the periodic job
  ``crm_sales.activity_reminders``.
- :mod:`.api`: the ``activities`` resource (``/api/v1/activities``), ``POST
  /api/v1/sales/activities/<id>/complete`` and ``/reopen``, and their OpenAPI
  description.
- :mod:`.common` (helper): what several of them share: the names of the kinds of
  activity, the installation's time zone and day, the names of an activity's links, and
  where a form goes back to.

Every write goes through :mod:`crm_sales.services.activities`.
"""
