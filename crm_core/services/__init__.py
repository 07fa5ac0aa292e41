"""The service layer: the only path for writes.

Every write runs in a :class:`UnitOfWork` (``CRM.unit_of_work()``) and goes
validate (marshmallow) -> reference checks -> ``crm_validate`` hooks -> write ->
audit entry -> outbox event -> ``crm_on_*`` hooks, all in that one transaction.
"""

from crm_core.services import contacts, customers, interactions, merges, tokens, users
from crm_core.services.records import BulkResult, RecordService
from crm_core.services.unit_of_work import RecordChange, UnitOfWork

__all__ = [
    "BulkResult",
    "RecordChange",
    "RecordService",
    "UnitOfWork",
    "contacts",
    "customers",
    "interactions",
    "merges",
    "tokens",
    "users",
]
