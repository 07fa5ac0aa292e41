"""Core models. Importing this package registers every core table on ``Base.metadata``."""

from crm_core.models.audit import AuditEntry
from crm_core.models.contact import Contact, ContactEmail, ContactPhone
from crm_core.models.customer import Customer, CustomerKind, CustomerTag, LifecycleStage
from crm_core.models.events import DeliveryAttempt, DeliveryStatus, EventDelivery, Webhook
from crm_core.models.imports import ImportJob, ImportMapping, ImportRejection, ImportStatus
from crm_core.models.interaction import CORE_CHANNELS, Direction, Interaction
from crm_core.models.outbox import OutboxEvent, OutboxStatus
from crm_core.models.token import ApiToken
from crm_core.models.user import Role, Team, User, Visibility, user_roles
from crm_core.models.views import SavedView

__all__ = [
    "CORE_CHANNELS",
    "ApiToken",
    "AuditEntry",
    "Contact",
    "ContactEmail",
    "ContactPhone",
    "Customer",
    "CustomerKind",
    "CustomerTag",
    "DeliveryAttempt",
    "DeliveryStatus",
    "Direction",
    "EventDelivery",
    "ImportJob",
    "ImportMapping",
    "ImportRejection",
    "ImportStatus",
    "Interaction",
    "LifecycleStage",
    "OutboxEvent",
    "OutboxStatus",
    "Role",
    "SavedView",
    "Team",
    "User",
    "Visibility",
    "Webhook",
    "user_roles",
]
