"""Settings: defaults, then an optional ``crm.toml``, then ``CRM_*`` environment variables.

All settings end up in one typed, immutable :class:`Settings` object. A wrong value
fails at start with a :class:`~crm_core.errors.ConfigError` naming the setting.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from crm_core.errors import ConfigError

ENV_PREFIX = "CRM_"
SUPPORTED_DIALECTS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one CRM instance."""

    instance_path: Path
    database_url: str
    secret_key: str
    plugins: tuple[str, ...] | None = None
    """Allow-list of plugin names; ``None`` enables every installed plugin."""
    disabled_plugins: tuple[str, ...] = ()
    """Deny-list of plugin names, applied after the allow-list."""
    strict_plugins: bool = False
    """Make any plugin that cannot be loaded a fatal error instead of a warning."""
    custom_attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Deployment-declared custom attributes: ``{"customer.vat_id": {"type": "string"}}``."""
    echo_sql: bool = False
    secure_cookies: bool = False
    """Send the session cookie over HTTPS only: set it when the CRM is served over HTTPS."""
    bulk_batch_size: int = 1000
    default_phone_region: str | None = None
    """Region (ISO country code) for phone numbers written without a country code."""
    queue_url: str = ""
    """The task queue: ``sqlite:///PATH`` (default: ``queue.sqlite3`` in the instance
    folder, for one machine) or ``redis://HOST:PORT/DB`` (several workers and machines)."""
    event_max_attempts: int = 8
    """Attempts of one event delivery before it is given up (dead letter)."""
    event_retry_seconds: float = 10.0
    """Delay before the first retry of a failed delivery; doubled after each attempt."""
    event_lease_seconds: float = 60.0
    """A delivery queued or being attempted for longer than this is taken to be lost
    (its worker died) and is queued again."""
    event_retention_days: int = 30
    """Delivered events older than this are deleted by the daily ``crm_core.prune_events``
    job (dead letters and events still being delivered are kept)."""
    webhook_timeout: float = 10.0
    """Seconds a webhook receiver has to answer a delivery."""
    webhook_disable_after: int = 50
    """A webhook is disabled after this many failed attempts in a row, with a notice."""
    brand_name: str = "crm-core"
    """The name the UI shows in its top bar and page titles."""
    templates_path: Path | None = None
    """A folder of templates searched before core's and the plugins' (override
    ``crm_core/ui/_brand.html``, ``crm_core/ui/_head.html`` or any page); default
    ``<instance_path>/templates``. In ``crm.toml`` relative to the file's folder."""

    @property
    def url(self) -> URL:
        """The database URL as a SQLAlchemy :class:`~sqlalchemy.engine.URL`."""
        return make_url(self.database_url)


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Settings:
    """Build :class:`Settings` from defaults, ``crm.toml``, the environment and ``overrides``.

    Later sources win: defaults < ``crm.toml`` < ``CRM_*`` variables < ``overrides``.
    The TOML file is ``config_file``, else ``$CRM_CONFIG``, else ``<instance>/crm.toml``
    or ``./crm.toml`` when present. An ``instance_path`` in the TOML file is relative
    to the file's folder; elsewhere, relative paths are relative to the working directory.
    """
    env = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - _KNOWN)
    if unknown:
        raise ConfigError(unknown[0], f"unknown setting (known: {sorted(_KNOWN)})")
    explicit_instance = overrides.get("instance_path") or env.get("CRM_INSTANCE_PATH", "").strip()
    instance = Path(explicit_instance or "instance").absolute()
    raw: dict[str, Any] = {}
    path = _find_config_file(config_file or env.get("CRM_CONFIG"), instance)
    if path is not None:
        raw.update(_read_toml(path))
        if not explicit_instance and raw.get("instance_path"):
            instance = (path.parent / str(raw["instance_path"])).absolute()
        if raw.get("templates_path"):
            raw["templates_path"] = path.parent / str(raw["templates_path"])
    raw.update(_from_environment(env))
    raw.update(overrides)
    raw["instance_path"] = instance
    return _validate(raw)


_KNOWN = {f.name for f in fields(Settings)}


def _find_config_file(explicit: str | os.PathLike[str] | None, instance: Path) -> Path | None:
    if explicit:
        path = Path(explicit).absolute()
        if not path.is_file():
            raise ConfigError("CRM_CONFIG", f"no such file: {path}")
        return path
    for candidate in (instance / "crm.toml", Path("crm.toml").absolute()):
        if candidate.is_file():
            return candidate
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    section = data.get("crm", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: crm", "must be a table: [crm]")
    unknown = sorted(set(section) - _KNOWN)
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}", f"unknown setting (known: {sorted(_KNOWN)})")
    return dict(section)


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """``CRM_*`` variables by setting name; an empty variable counts as unset.

    (``CRM_DATABASE_URL=${DB_URL}`` with ``DB_URL`` unset must not silently replace
    the database of ``crm.toml`` with a new SQLite file.)
    """
    values: dict[str, Any] = {}
    for name in _KNOWN - {"instance_path", "custom_attributes"}:
        value = env.get(ENV_PREFIX + name.upper(), "")
        if value.strip():
            values[name] = value
    attributes = env.get("CRM_CUSTOM_ATTRIBUTES", "").strip()
    if attributes:
        try:
            values["custom_attributes"] = json.loads(attributes)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                "CRM_CUSTOM_ATTRIBUTES", f"not valid JSON ({exc.msg} at column {exc.colno})"
            ) from exc
    return values


def _validate(raw: dict[str, Any]) -> Settings:
    instance: Path = raw["instance_path"]
    database_url = raw.get("database_url") or f"sqlite:///{instance / 'crm.sqlite3'}"
    return Settings(
        instance_path=instance,
        database_url=_check_database_url(str(database_url)),
        secret_key=_secret_key(raw.get("secret_key"), instance),
        plugins=_name_list("CRM_PLUGINS", raw.get("plugins")),
        disabled_plugins=_name_list("CRM_DISABLED_PLUGINS", raw.get("disabled_plugins")) or (),
        strict_plugins=_boolean("CRM_STRICT_PLUGINS", raw.get("strict_plugins", False)),
        custom_attributes=_mapping("custom_attributes", raw.get("custom_attributes", {})),
        echo_sql=_boolean("CRM_ECHO_SQL", raw.get("echo_sql", False)),
        secure_cookies=_boolean("CRM_SECURE_COOKIES", raw.get("secure_cookies", False)),
        bulk_batch_size=_positive_int("CRM_BULK_BATCH_SIZE", raw.get("bulk_batch_size", 1000)),
        default_phone_region=_phone_region(raw.get("default_phone_region")),
        queue_url=_queue_url(raw.get("queue_url"), instance),
        event_max_attempts=_positive_int(
            "CRM_EVENT_MAX_ATTEMPTS", raw.get("event_max_attempts", 8)
        ),
        event_retry_seconds=_positive_float(
            "CRM_EVENT_RETRY_SECONDS", raw.get("event_retry_seconds", 10.0)
        ),
        event_lease_seconds=_positive_float(
            "CRM_EVENT_LEASE_SECONDS", raw.get("event_lease_seconds", 60.0)
        ),
        event_retention_days=_positive_int(
            "CRM_EVENT_RETENTION_DAYS", raw.get("event_retention_days", 30)
        ),
        webhook_timeout=_positive_float("CRM_WEBHOOK_TIMEOUT", raw.get("webhook_timeout", 10.0)),
        webhook_disable_after=_positive_int(
            "CRM_WEBHOOK_DISABLE_AFTER", raw.get("webhook_disable_after", 50)
        ),
        brand_name=_brand_name(raw.get("brand_name")),
        templates_path=_templates_path(raw.get("templates_path"), instance),
    )


def _brand_name(value: object) -> str:
    name = " ".join(str(value if value is not None else "crm-core").split())
    if not name or len(name) > 60:
        raise ConfigError("CRM_BRAND_NAME", "give a name of 1 to 60 characters")
    return name


def _templates_path(value: object, instance: Path) -> Path:
    """The override folder: given (it must exist), else ``<instance>/templates``."""
    if value is None or not str(value).strip():
        return instance / "templates"
    path = Path(str(value)).absolute()
    if not path.is_dir():
        raise ConfigError("CRM_TEMPLATES_PATH", f"no such folder: {path}")
    return path


def _queue_url(value: object, instance: Path) -> str:
    url = str(value or "").strip() or f"sqlite:///{instance / 'queue.sqlite3'}"
    scheme = url.split(":", 1)[0]
    if scheme not in ("sqlite", "redis", "rediss", "memory"):
        raise ConfigError(
            "CRM_QUEUE_URL", f"{url!r}: use sqlite:///PATH, redis://HOST:PORT/DB or memory://"
        )
    return url


def _phone_region(value: object) -> str | None:
    if value is None or not str(value).strip():
        return None
    from crm_core.phones import SUPPORTED_REGIONS

    region = str(value).strip().upper()
    if region not in SUPPORTED_REGIONS:
        raise ConfigError(
            "CRM_DEFAULT_PHONE_REGION",
            f"{value!r} is not a country code phone numbers can be read for; "
            "use an ISO 3166 code such as DE, US or GB",
        )
    return region


def _check_database_url(value: str) -> str:
    try:
        url = make_url(value)
    except (ArgumentError, ValueError) as exc:
        # ValueError: a URL that parses but has e.g. a non-numeric port. The value is
        # not repeated: it may hold a password.
        raise ConfigError(
            "CRM_DATABASE_URL",
            "not a database URL; use sqlite:///path or postgresql+psycopg://user@host/db",
        ) from exc
    backend = url.get_backend_name()
    if backend not in SUPPORTED_DIALECTS:
        raise ConfigError(
            "CRM_DATABASE_URL",
            f"unsupported database {backend!r}; use sqlite:///path or "
            "postgresql+psycopg://user@host/db",
        )
    # Name the driver explicitly: what a bare ``postgresql://`` means depends on the
    # SQLAlchemy version (psycopg2 before 2.1), and crm-core ships only psycopg 3.
    if backend == "postgresql" and url.drivername != "postgresql+psycopg":
        raise ConfigError(
            "CRM_DATABASE_URL",
            "PostgreSQL needs the psycopg 3 driver, named in the URL: "
            "postgresql+psycopg://user@host/db (install crm-core[postgres])",
        )
    if backend == "sqlite" and url.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise ConfigError(
            "CRM_DATABASE_URL",
            f"unsupported SQLite driver {url.get_driver_name()!r}; use sqlite:///path",
        )
    return value


MIN_SECRET_KEY_LENGTH = 16


def _secret_key(value: object, instance: Path) -> str:
    if value:
        if len(str(value)) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                "CRM_SECRET_KEY", f"must be at least {MIN_SECRET_KEY_LENGTH} characters long"
            )
        return str(value)
    # No key configured: keep one per instance so sessions survive restarts.
    key_file = instance / "secret_key"
    if not key_file.exists():
        _create_secret_key_file(key_file)
    key = key_file.read_text(encoding="utf-8").strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            "CRM_SECRET_KEY",
            f"the generated key in {key_file} is damaged (shorter than "
            f"{MIN_SECRET_KEY_LENGTH} characters); delete the file to make a new one",
        )
    return key


def _create_secret_key_file(key_file: Path) -> None:
    """Write a new random key, readable by the owner only, without racing other processes.

    Several workers (``gunicorn -w 2``) may start at once on a new instance: the key
    is written to a private temporary file and linked into place, so every process
    reads the same, complete key (the first link wins; the others read it).
    """
    key_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = key_file.with_name(f".{key_file.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48))
        with contextlib.suppress(FileExistsError):
            os.link(temporary, key_file)
    finally:
        temporary.unlink()


def _name_list(setting: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list | tuple):
        items = [str(part).strip() for part in value]
    else:
        raise ConfigError(setting, "must be a comma-separated string or a list of names")
    return tuple(normalise_plugin_name(item) for item in items if item)


def normalise_plugin_name(name: str) -> str:
    """Plugin names compare case-insensitively, with ``-`` and ``_`` equal."""
    return name.strip().lower().replace("-", "_")


def _boolean(setting: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(setting, f"expected true or false, got {value!r}")


def _positive_int(setting: str, value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ConfigError(setting, f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise ConfigError(setting, f"must be at least 1, got {number}")
    return number


def _positive_float(setting: str, value: object) -> float:
    try:
        number = float(str(value))
    except ValueError:
        raise ConfigError(setting, f"expected a number, got {value!r}") from None
    if not number > 0:
        raise ConfigError(setting, f"must be more than 0, got {number}")
    return number


def _mapping(setting: str, value: object) -> Mapping[str, Mapping[str, Any]]:
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise ConfigError(setting, "must be a table of tables, e.g. [crm.custom_attributes.x]")
    return {str(k): dict(v) for k, v in value.items()}
