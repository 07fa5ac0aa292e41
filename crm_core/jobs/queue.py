"""The task queue: Huey, on SQLite for one machine or on Redis for several.

Why Huey: it is small, well kept, has the two storages we need behind one API
(``SqliteHuey`` needs nothing but a file; ``RedisHuey`` lets workers on several
machines share one queue), delayed and periodic tasks, and a consumer with thread
or process workers. The queue only carries work to workers quickly; what must not
be lost (outbox events, their deliveries, import jobs) lives in the CRM database,
so a message lost with a killed worker is found and sent again from there.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab

from crm_core.errors import ConfigError

DEFAULT_QUEUE_NAME = "crm"


def make_huey(url: str) -> Huey:
    """The Huey instance for a ``queue_url`` setting.

    - ``sqlite:///PATH``: a SQLite file (one machine; the default, next to the database);
    - ``redis://HOST:PORT/DB`` (or ``rediss://``): a Redis server, for workers on
      several machines;
    - ``memory://``: no queue at all; a job runs at once, in the process that
      enqueues it (tests, scripts).

    ``?queue=NAME`` names the queue (default ``crm``): CRMs sharing a Redis server
    need different names.
    """
    parts = urlsplit(url)
    name = parse_qs(parts.query).get("queue", [DEFAULT_QUEUE_NAME])[0]
    if parts.scheme == "memory":
        return MemoryHuey(name, immediate=True, results=False)
    if parts.scheme == "sqlite":
        path = Path(url.split(":///", 1)[1].split("?", 1)[0]) if ":///" in url else None
        if path is None or not path.name:
            raise ConfigError("CRM_QUEUE_URL", f"{url!r}: write sqlite:///PATH/TO/queue.sqlite3")
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path), results=False, timeout=30)
    if parts.scheme in ("redis", "rediss"):
        plain = parts._replace(query="").geturl()
        return RedisHuey(name, url=plain, results=False, blocking=True, read_timeout=1)
    raise ConfigError("CRM_QUEUE_URL", f"{url!r}: unknown queue scheme {parts.scheme!r}")


def parse_crontab(schedule: str) -> crontab:
    """A Huey ``crontab`` from a five-field crontab string (minute hour day month weekday)."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"{schedule!r}: a schedule has five fields: minute hour day month weekday")
    minute, hour, day, month, weekday = fields
    return crontab(minute=minute, hour=hour, day=day, month=month, day_of_week=weekday)
