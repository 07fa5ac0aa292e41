"""Marking the core's messages for the UI's translations, without translating them here.

Services and schemas speak English (the API and the CLI show their messages as they
are). Messages a person may see in the UI are wrapped in :func:`N_`, which returns them
unchanged but lets ``pybabel extract`` (``make translations``) put them into the
catalogues; the UI looks each message up when it shows it
(:func:`crm_core.web.i18n.translate`).
"""

from __future__ import annotations


def N_(message: str) -> str:
    """Return ``message`` unchanged; ``pybabel`` extracts it for the UI's catalogues."""
    return message


#: Messages marshmallow writes itself for our schemas' fields (its defaults), so that the
#: catalogues translate them too.
LIBRARY_MESSAGES = (
    N_("Missing data for required field."),
    N_("Field may not be null."),
    N_("Unknown field."),
    N_("Invalid input type."),
    N_("Not a valid string."),
    N_("Not a valid integer."),
    N_("Not a valid number."),
    N_("Not a valid boolean."),
    N_("Not a valid datetime."),
    N_("Not a valid date."),
    N_("Not a valid list."),
    N_("Not a valid mapping type."),
    N_("Not a valid email address."),
    N_("Not a valid URL."),
    N_("Must be one of the choices."),
    N_("Invalid value."),
)
