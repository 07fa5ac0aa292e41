"""``crm worker``: a Huey consumer for the CRM's queue, plus the outbox relay."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from huey.consumer import Consumer

from crm_core.imports.jobs import fail_abandoned
from crm_core.jobs.deliveries import RELAY_BATCH, relay, requeue_lost

if TYPE_CHECKING:
    from crm_core.runtime import CRM

log = logging.getLogger(__name__)


class _QuietConsumer(Consumer):
    """A consumer that leaves signals alone: for a worker inside another program."""

    def _set_signal_handlers(self) -> None:
        """Signals belong to the host program (e.g. ``crm serve``)."""


class Worker:
    """Runs the queue's tasks in ``threads`` threads and relays the outbox every
    ``relay_interval`` seconds; several workers (processes, machines) may run at once."""

    def __init__(
        self,
        crm: CRM,
        *,
        threads: int = 4,
        relay_interval: float = 0.2,
        periodic: bool = True,
        embedded: bool = False,
    ) -> None:
        self.crm = crm
        self.relay_interval = relay_interval
        consumer_class = _QuietConsumer if embedded else Consumer
        self.consumer = consumer_class(
            crm.queue.huey,
            workers=threads,
            worker_type="thread",
            periodic=periodic,
            initial_delay=0.02,
            backoff=1.5,
            max_delay=0.5,
            check_worker_health=True,
        )
        self._stop = threading.Event()
        self._relay_thread = threading.Thread(
            target=self._relay_loop, name="crm-outbox-relay", daemon=True
        )

    def run(self) -> None:
        """Work until SIGINT or SIGTERM (finishing the tasks in hand), then return."""
        self._relay_thread.start()
        try:
            self.consumer.run()
        finally:
            self._stop.set()
            self._relay_thread.join(timeout=5)

    def start(self) -> None:
        """Work in background threads (for ``crm serve``); :meth:`stop` ends it."""
        self._relay_thread.start()
        self.consumer.start()

    def stop(self) -> None:
        """Stop relaying and let the queue's threads finish their task."""
        self._stop.set()
        self.consumer.stop(graceful=True)
        self._relay_thread.join(timeout=5)

    def _relay_loop(self) -> None:
        requeue_every = max(self.crm.settings.event_lease_seconds / 4, self.relay_interval)
        last_requeue = 0.0
        while not self._stop.wait(self.relay_interval):
            try:
                while relay(self.crm) == RELAY_BATCH and not self._stop.is_set():
                    pass
                if time.monotonic() - last_requeue >= requeue_every:
                    last_requeue = time.monotonic()
                    requeue_lost(self.crm)
                    fail_abandoned(self.crm)
            except Exception:
                # The database may be away for a moment (restarting, locked): try again.
                log.exception("outbox relay failed; retrying in %s s", self.relay_interval)
