"""Acme's brand: the names and addresses its templates show, in one place."""

from __future__ import annotations

COMPANY = "Acme Corp"
PRODUCT = "Acme CRM"
TAGLINE = "Customers first, since 1949."
SUPPORT_EMAIL = "crm-support@acme.example"
HANDBOOK_URL = "https://intranet.acme.example/crm-handbook"


def context() -> dict[str, str]:
    """The variables the brand's templates are rendered with."""
    return {
        "company": COMPANY,
        "product": PRODUCT,
        "tagline": TAGLINE,
        "support_email": SUPPORT_EMAIL,
        "handbook_url": HANDBOOK_URL,
    }
