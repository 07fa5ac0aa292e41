"""Background work: the task queue, jobs from plugins, and outbox event delivery.

:class:`JobQueue` (``crm.queue``) builds the Huey instance of the ``queue_url``
setting and registers on it every job of ``crm_register_jobs`` plus core's
delivery task; ``crm worker`` (:class:`~crm_core.jobs.worker.Worker`) consumes it
and relays the outbox. Enqueue from anywhere with :func:`enqueue`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from huey import Huey
from huey.api import TaskWrapper

from crm_core.errors import CRMError
from crm_core.extensions import Job
from crm_core.jobs.queue import make_huey, parse_crontab

if TYPE_CHECKING:
    from crm_core.runtime import CRM

__all__ = ["JobQueue", "enqueue"]

#: Deliveries carried by one queue message.
DELIVERY_CHUNK = 20


def enqueue(crm: CRM, job: str, /, **kwargs: Any) -> None:
    """Queue a run of the registered job ``job`` with ``kwargs`` (JSON-like values).

    Call it after the rows the job reads are committed (``uow.after_commit``).
    """
    crm.queue.enqueue(job, **kwargs)


class JobQueue:
    """The CRM's Huey instance with its tasks: registered jobs and event deliveries."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        self.huey: Huey = make_huey(crm.settings.queue_url)
        self._deliver = self.huey.task(name="crm_core.deliver")(self._run_deliveries)
        self._jobs: dict[str, TaskWrapper] = {}
        for job in crm.registry.jobs.values():
            self._jobs[job.name] = self._task(job)

    def _task(self, job: Job) -> TaskWrapper:
        crm = self.crm

        def run(**kwargs: Any) -> None:
            job.func(crm, **kwargs)

        options = {
            "name": f"job:{job.name}",
            "retries": job.retries,
            "retry_delay": job.retry_delay,
        }
        if job.schedule is None:
            return self.huey.task(**options)(run)
        try:
            schedule = parse_crontab(job.schedule)
        except ValueError as exc:
            raise CRMError(f"job {job.name!r}: bad schedule {job.schedule!r}: {exc}") from exc
        return self.huey.periodic_task(schedule, **options)(run)

    @property
    def immediate(self) -> bool:
        """Whether jobs run at once in the enqueuing process (``queue_url = memory://``)."""
        return bool(self.huey.immediate)

    def enqueue(self, name: str, /, **kwargs: Any) -> None:
        """Queue a run of job ``name``; :class:`CRMError` if no such job is registered."""
        task = self._jobs.get(name)
        if task is None:
            raise CRMError(f"no job {name!r} is registered (known: {sorted(self._jobs)})")
        task(**kwargs)

    def deliver(self, delivery_ids: Sequence[int], *, delay: float | None = None) -> None:
        """Queue event deliveries, a few per message; after ``delay`` seconds if given."""
        ids = list(delivery_ids)
        for start in range(0, len(ids), DELIVERY_CHUNK):
            chunk = ids[start : start + DELIVERY_CHUNK]
            if delay and not self.immediate:
                self._deliver.schedule((chunk,), delay=delay)
            elif not delay:
                self._deliver(chunk)

    def _run_deliveries(self, delivery_ids: list[int]) -> None:
        from crm_core.jobs.deliveries import deliver

        deliver(self.crm, delivery_ids)

    def pending_messages(self) -> int:
        """Messages waiting in the queue (not counting scheduled retries)."""
        return int(self.huey.pending_count())
