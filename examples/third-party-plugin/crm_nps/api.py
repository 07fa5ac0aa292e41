"""The plugin's REST resource, on core's :class:`~crm_core.web.api.ApiResource`:
``/api/v1/nps-surveys``.

Core gives it authentication, the permission ``nps.survey.view`` on lists and reads
(the service checks ``nps.survey.edit`` on writes), keyset pages, the filters below,
``ETag``/``If-Match``, 422 problems naming the refused fields, ``/history`` and its
place in the OpenAPI document. ``POST`` sends a survey for an interaction, ``PATCH``
records an answer given another way, ``DELETE`` withdraws a survey.
"""

from __future__ import annotations

from crm_core.web.api import ApiResource

from crm_nps import services
from crm_nps.models import Survey
from crm_nps.permissions import SURVEY
from crm_nps.schemas import SurveySchema

SURVEYS = ApiResource(
    name="nps-surveys",
    entity=services.ENTITY,
    model=Survey,
    service=services,
    permission=SURVEY,
    schema=SurveySchema,
    filters={"customer_id": Survey.customer_id, "interaction_id": Survey.interaction_id},
    visibility=services.visible_surveys,
    description="NPS surveys sent after interactions, with their answers (crm-nps).",
)
