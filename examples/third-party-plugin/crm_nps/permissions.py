"""The permissions the plugin checks, for admins to grant to roles."""

from __future__ import annotations

from crm_core.extensions import Permission

#: The prefix of the survey permissions (``.view``, ``.edit``), as the API resource
#: checks them.
SURVEY = "nps.survey"
VIEW, EDIT = f"{SURVEY}.view", f"{SURVEY}.edit"

PERMISSIONS = (
    Permission(VIEW, "See NPS surveys, their answers and customers' NPS"),
    Permission(EDIT, "Send, withdraw and record answers to NPS surveys"),
)
