"""Import jobs: one row per import (CLI, API, UI), run now or by the task queue.

:func:`create_job` stores an :class:`~crm_core.models.ImportJob` (status ``queued``)
for a file on disk; :func:`run_import_job` runs it (the task queue's job
``crm_core.import`` calls it with the job's id), writing progress, counts and
rejected rows to the database as it goes; :func:`report_lines` streams the rejected
rows as CSV (``line,column,value,reason``). Saved mappings are
:class:`~crm_core.models.ImportMapping` rows: :func:`save_mapping`, :func:`find_mapping`.

An uploaded file is deleted once its job has run, except the file of a dry run that
succeeded: the job keeps it for :data:`KEEP_DRY_RUN_FILE` (``file_expires_at``) so that
:func:`rerun` can run it again, with another mapping or for real, as a new job that
takes the file over. :func:`prune_kept_files` (the hourly ``crm_core.prune_import_files``
task) deletes the kept files whose time is up.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.orm import Session

from crm_core.authz import require
from crm_core.db import utcnow
from crm_core.errors import CRMError, NotFoundError, PermissionDenied
from crm_core.i18n import N_
from crm_core.ids import MAX_ID
from crm_core.imports.mapping import (
    ENTITIES,
    MappingError,
    entity_name,
    import_permission,
    normalise,
)
from crm_core.imports.reading import ReadError
from crm_core.imports.runner import ImportOptions, Progress, preflight, run_import
from crm_core.models import ImportJob, ImportMapping, ImportRejection, ImportStatus, User
from crm_core.services.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from crm_core.runtime import CRM

log = logging.getLogger(__name__)

#: The task queue's name of :func:`run_import_job`.
JOB_NAME = "crm_core.import"
REPORT_HEADER = ("line", "column", "value", "reason")
#: How long a dry run keeps its uploaded file for running it again (:func:`rerun`).
KEEP_DRY_RUN_FILE = dt.timedelta(hours=24)
_FINISHED = (ImportStatus.SUCCEEDED.value, ImportStatus.FAILED.value)


class RerunError(CRMError):
    """An import job cannot run again: it has not finished, or its file is gone."""


def uploads_folder(crm: CRM) -> Path:
    """Where uploaded files wait for their job: ``<instance_path>/imports``."""
    return Path(crm.settings.instance_path) / "imports"


def create_job(
    uow: UnitOfWork,
    *,
    path: str | Path,
    filename: str,
    options: ImportOptions,
    scopes: tuple[str, ...] | frozenset[str] = (),
) -> ImportJob:
    """A queued job importing the file at ``path`` as ``options`` say, for ``uow.actor``.

    Needs ``<entity>.edit`` (a plugin's importer: its ``permission``). ``scopes`` are the
    API token's, kept so the job acts with no more permissions than the request that
    created it.
    """
    options.checked(uow.crm)
    require(uow.actor, import_permission(uow.crm, options.entity))
    file_path = Path(path)
    try:
        total = file_path.stat().st_size
    except OSError:
        total = None
    job = ImportJob(
        entity=options.entity,
        format=options.format,
        filename=filename[:500],
        path=str(file_path),
        status=ImportStatus.QUEUED.value,
        dry_run=options.dry_run,
        options={**options.as_json(), "scopes": sorted(scopes)},
        total_bytes=total,
        created_by_id=uow.actor_id,
    )
    uow.session.add(job)
    uow.session.flush()
    return job


def run_import_job(crm: CRM, job_id: int, progress: Progress | None = None) -> None:
    """Run queued import job ``job_id`` (the ``crm_core.import`` task).

    A job that already ran (succeeded or failed) or that another worker runs is left
    alone. A file that cannot be read, wrong options or an unexpected error mark the
    job ``failed`` with the error; rejected rows do not (the job ``succeeded``).
    An uploaded file under :func:`uploads_folder` is deleted once the job has run,
    unless the job is a dry run that succeeded: that file is kept for
    :data:`KEEP_DRY_RUN_FILE` (``file_expires_at``), for :func:`rerun`.
    """
    with crm.unit_of_work(source="import") as uow:
        claimed = uow.session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.status == ImportStatus.QUEUED.value)
            .values(
                status=ImportStatus.RUNNING.value, started_at=utcnow(), progressed_at=utcnow()
            )
        ).rowcount
        job = uow.session.get(ImportJob, job_id)
        if job is None:
            log.warning("import job %s does not exist", job_id)
            return
        if not claimed:
            log.info("import job %s is %s: not run again", job_id, job.status)
            return
        options = ImportOptions(
            entity=job.entity,
            format=job.format,
            columns=dict(job.options.get("columns") or {}) or None,
            delimiter=job.options.get("delimiter"),
            encoding=job.options.get("encoding"),
            match_on=job.options.get("match_on"),
            on_match=job.options.get("on_match"),
            dry_run=job.dry_run,
            batch_size=job.options.get("batch_size"),
        )
        path, dry_run = job.path, job.dry_run
        created_by_id, scopes = job.created_by_id, tuple(job.options.get("scopes") or ())
    error: str | None = None
    try:
        actor = _actor(crm, created_by_id, scopes)
        if path is None:
            raise ReadError("the job has no file")
        run_import(crm, path, options, actor=actor, job_id=job_id, progress=progress)
    except (ReadError, MappingError) as exc:
        error = str(exc)
    except CRMError as exc:
        error = str(exc)
        log.warning("import job %s failed: %s", job_id, exc)
    except Exception as exc:  # the job must end as failed, whatever happened
        log.exception("import job %s failed", job_id)
        error = f"{type(exc).__name__}: {exc}"
    keep = error is None and dry_run and path is not None and _is_upload(crm, Path(path))
    with crm.unit_of_work(source="import") as uow:
        uow.session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(
                status=ImportStatus.FAILED.value if error else ImportStatus.SUCCEEDED.value,
                error=error,
                finished_at=utcnow(),
                file_expires_at=utcnow() + KEEP_DRY_RUN_FILE if keep else None,
            )
        )
    if path is not None and not keep:
        _remove_upload(crm, Path(path))


def _actor(crm: CRM, user_id: int | None, scopes: tuple[str, ...]) -> Any:
    """The user a job acts as (narrowed to the token's scopes), or ``None`` for the system."""
    if user_id is None:
        return None
    with crm.session_factory() as session:
        user = session.get(User, user_id)
        if user is None or not user.active:
            raise CRMError(f"the user who started the import (id {user_id}) is gone or inactive")
        user.permissions  # noqa: B018 - loads the roles while the session is open
    if scopes:
        from crm_core.security import ScopedActor

        return ScopedActor(user, scopes)
    return user


def _is_upload(crm: CRM, path: Path) -> bool:
    """Whether ``path`` is an uploaded file (under :func:`uploads_folder`), not the user's."""
    try:
        return uploads_folder(crm).resolve() in path.resolve().parents
    except OSError:
        return False


def _remove_upload(crm: CRM, path: Path) -> None:
    """Delete an uploaded file (and its job folder); files elsewhere are the user's."""
    if not _is_upload(crm, path):
        return
    folder = uploads_folder(crm).resolve()
    resolved = path.resolve()
    target = resolved.parent if resolved.parent != folder else resolved
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
    else:
        resolved.unlink(missing_ok=True)


def _release_files(crm: CRM, where: ColumnElement[bool], **values: Any) -> list[int]:
    """Set ``values`` on the jobs ``where`` selects, take their files from them and delete
    the uploaded ones once that has committed; the jobs' ids.

    The rows are locked while they change, so a concurrent :func:`rerun` either took a
    file before or finds it gone. When no job matches, no write lock is taken.
    """
    with crm.session_factory() as session:
        if session.scalar(select(ImportJob.id).where(where).limit(1)) is None:
            return []  # the usual case
    with crm.unit_of_work(source="import") as uow:
        rows = uow.session.execute(
            select(ImportJob.id, ImportJob.path).where(where).with_for_update()
        ).all()
        ids = [row.id for row in rows]
        if ids:
            uow.session.execute(
                update(ImportJob)
                .where(ImportJob.id.in_(ids))
                .values(**values, path=None, file_expires_at=None)
            )
    for row in rows:
        if row.path is not None:
            _remove_upload(crm, Path(row.path))
    return ids


def enqueue_after_commit(uow: UnitOfWork, job_id: int) -> None:
    """Queue job ``job_id`` (task ``crm_core.import``) once ``uow`` has committed."""
    crm = uow.crm

    def enqueue() -> None:
        from crm_core.jobs import enqueue as queue

        queue(crm, JOB_NAME, job_id=job_id)

    uow.after_commit(enqueue)


# -- kept files and running again -------------------------------------------------------------


def kept_file(job: ImportJob, *, now: dt.datetime | None = None) -> Path | None:
    """The file ``job`` keeps for running again (a dry run's, until it expires), else ``None``."""
    expires = job.file_expires_at
    if job.path is None or expires is None or expires <= (now or utcnow()):
        return None
    path = Path(job.path)
    return path if path.is_file() else None


def rerun(
    uow: UnitOfWork,
    job_id: int,
    *,
    dry_run: bool,
    columns: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> ImportJob:
    """Run the kept file of job ``job_id`` again as a new queued job; the new job.

    The new job has the old one's options, with ``columns`` (header -> target, ``""``
    ignores a column) over its explicit columns, and takes the file over: the old job
    keeps none any more. Only the job's creator may run it again, with
    ``<entity>.edit`` (a plugin's importer: its permission), as for an upload
    (:class:`PermissionDenied`);
    :class:`NotFoundError` for no such job, :class:`RerunError` when it has not
    finished or its file is gone (not a dry run, failed, expired, run again already),
    :class:`MappingError` (or :class:`ReadError`) when the file does not fit ``columns``.
    The job is queued once ``uow`` commits.
    """
    job = uow.session.get(ImportJob, job_id) if 0 < job_id <= MAX_ID else None
    if job is None:
        raise NotFoundError("import", job_id)
    if job.created_by_id != uow.actor_id:
        raise PermissionDenied("only the user who uploaded a file may run it again")
    require(uow.actor, import_permission(uow.crm, entity_name(job.entity, uow.crm)))
    path = _rerunnable_file(job, now or utcnow())
    options = _rerun_options(job, dry_run=dry_run, columns=columns)
    preflight(uow.crm, path, options)
    claimed = uow.session.execute(
        update(ImportJob)
        .where(
            ImportJob.id == job.id,
            ImportJob.path == job.path,
            ImportJob.file_expires_at.is_not(None),
        )
        .values(path=None, file_expires_at=None)
    ).rowcount
    if not claimed:  # another request took the file over meanwhile
        raise RerunError(f"import {job_id} cannot run again: its file was taken over")
    new = create_job(
        uow,
        path=path,
        filename=job.filename,
        options=options,
        scopes=getattr(uow.actor, "scopes", ()),
    )
    enqueue_after_commit(uow, new.id)
    return new


def _rerunnable_file(job: ImportJob, now: dt.datetime) -> Path:
    """The file ``job`` keeps; :class:`RerunError` saying why it cannot run again."""
    if job.status not in _FINISHED:
        raise RerunError(f"import {job.id} has not finished yet: run it again once it has")
    path = kept_file(job, now=now)
    if path is not None:
        return path
    hours = int(KEEP_DRY_RUN_FILE.total_seconds() // 3600)
    if not job.dry_run:
        why = "it was not a dry run, and its file was deleted once imported"
    elif job.status == ImportStatus.FAILED.value:
        why = "it failed, and its file was deleted"
    elif job.file_expires_at is not None and job.file_expires_at <= now:
        why = f"its file expired (a dry run's file is kept for {hours} hours)"
    else:
        why = "its file is no longer kept (it was run again or imported for real, or it expired)"
    raise RerunError(f"import {job.id} cannot run again: {why}; upload the file again")


def _rerun_options(
    job: ImportJob, *, dry_run: bool, columns: Mapping[str, str] | None
) -> ImportOptions:
    """``job``'s options for running again, ``columns`` over its explicit ones."""
    stored = job.options
    explicit = dict(stored.get("columns") or {})
    if columns and job.format != "csv":
        refused = N_("A vCard file has no columns to map.")
        raise MappingError({header: [refused] for header in columns})
    for header, target in (columns or {}).items():
        if not isinstance(header, str) or not isinstance(target, str):
            raise MappingError({str(header): [N_("Map a header to a field name (text).")]})
        explicit = {k: v for k, v in explicit.items() if normalise(k) != normalise(header)}
        explicit[header] = target.strip()
    return ImportOptions(
        entity=job.entity,
        format=job.format,
        columns=explicit or None,
        delimiter=stored.get("delimiter"),
        encoding=stored.get("encoding"),
        match_on=stored.get("match_on"),
        on_match=stored.get("on_match"),
        dry_run=dry_run,
        batch_size=stored.get("batch_size"),
    )


def prune_kept_files(crm: CRM, *, now: dt.datetime | None = None) -> list[int]:
    """Delete the kept files of dry runs that expired by ``now``; the ids of their jobs.

    The jobs' ``path`` and ``file_expires_at`` are cleared first, in one transaction
    (the rows locked, so a concurrent :func:`rerun` either took the file before or
    finds it gone); the files are deleted once it has committed.
    """
    ids = _release_files(crm, ImportJob.file_expires_at <= (now or utcnow()))
    if ids:
        log.info("deleted the kept files of %s expired dry runs", len(ids))
    return ids


#: A running job that committed no batch for this long was left by a worker that died.
ABANDONED_AFTER = dt.timedelta(minutes=15)


def fail_abandoned(crm: CRM, *, after: dt.timedelta = ABANDONED_AFTER) -> list[int]:
    """Mark failed the running import jobs that made no progress for ``after``; their ids.

    Their committed batches stay (each batch is its own transaction); the error says how
    to finish: import the file again, matching on email or external id updates the rows
    that are in already. Their uploaded files are deleted, as after any failed job (a
    file of the user's own, given to ``crm import``, stays). Called by ``crm worker``
    every few seconds.
    """
    stalled = and_(
        ImportJob.status == ImportStatus.RUNNING.value,
        ImportJob.progressed_at < utcnow() - after,
    )
    error = (
        f"the worker running this import stopped (no batch for "
        f"{int(after.total_seconds() // 60)} minutes); the batches it committed are in: "
        "import the file again to finish (rows already in are matched and updated or skipped)"
    )
    ids = _release_files(
        crm, stalled, status=ImportStatus.FAILED.value, finished_at=utcnow(), error=error
    )
    for ident in ids:
        log.warning("import job %s was abandoned by its worker: marked failed", ident)
    return ids


def progress_percent(job: ImportJob) -> float | None:
    """How far the job has read its file, 0 to 100 (``None`` while the size is unknown)."""
    if job.status == ImportStatus.SUCCEEDED.value:
        return 100.0
    if not job.total_bytes:
        return None
    return round(min(100.0, 100.0 * job.processed_bytes / job.total_bytes), 1)


# -- the report -----------------------------------------------------------------------------


def rejections(
    session: Session, job_id: int, *, after_id: int | None = None, limit: int = 1000
) -> list[ImportRejection]:
    """Up to ``limit`` rejections of job ``job_id`` after ``after_id``, in file order."""
    statement = (
        select(ImportRejection)
        .where(ImportRejection.job_id == job_id)
        .order_by(ImportRejection.id)
        .limit(limit)
    )
    if after_id is not None:
        statement = statement.where(ImportRejection.id > after_id)
    return list(session.scalars(statement))


def report_lines(crm: CRM, job_id: int, *, chunk: int = 1000) -> Iterator[str]:
    """The report of job ``job_id`` as CSV text, a header then one line per reason.

    Read in chunks of ``chunk`` rows, each chunk in a short read of its own, so a
    report of a million rows streams in constant memory.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(REPORT_HEADER)
    yield _drain(buffer)
    after: int | None = None
    while True:
        with crm.session_factory() as session:
            found = rejections(session, job_id, after_id=after, limit=chunk)
            rows = [(r.line, r.column, r.value or "", r.reason) for r in found]
            after = found[-1].id if found else after
        if not rows:
            return
        writer.writerows(rows)
        yield _drain(buffer)
        if len(rows) < chunk:
            return


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def write_report(crm: CRM, job_id: int, path: str | Path) -> int:
    """Write job ``job_id``'s report to ``path`` (UTF-8 with BOM, for spreadsheets); rows."""
    count = -1
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        for text in report_lines(crm, job_id):
            out.write(text)
            count += text.count("\r\n")
    return max(count, 0)


# -- saved mappings ---------------------------------------------------------------------------


def find_mapping(session: Session, name: str) -> ImportMapping:
    """The saved mapping called ``name``; :class:`MappingError` if there is none."""
    found = session.scalars(select(ImportMapping).where(ImportMapping.name == name)).first()
    if found is None:
        known = ", ".join(session.scalars(select(ImportMapping.name).order_by(ImportMapping.name)))
        raise MappingError({"mapping": [f"No saved mapping {name!r}; saved: {known or 'none'}."]})
    return found


def save_mapping(
    uow: UnitOfWork,
    name: str,
    entity: str,
    columns: Mapping[str, str],
    options: Mapping[str, Any] | None = None,
) -> ImportMapping:
    """Create or replace the saved mapping ``name`` (needs ``<entity>.edit``).

    Targets are checked against the entity's fields (:class:`MappingError`); headers
    are not, as no file is at hand.
    """
    from crm_core.imports.mapping import available_targets, parse_target

    entity = entity_name(entity)
    require(uow.actor, f"{entity}.edit")
    name = name.strip()
    if not name or len(name) > 120:
        raise MappingError({"name": [N_("Give a name of 1 to 120 characters.")]})
    targets = available_targets(uow.crm, entity)
    errors: dict[str, list[str]] = {}
    for header, target in columns.items():
        if not isinstance(header, str) or not isinstance(target, str):
            errors.setdefault(str(header), []).append("Map a header to a field name (text).")
            continue
        if target.strip():
            try:
                parse_target(uow.crm, entity, target, targets)
            except MappingError as exc:
                for messages in exc.messages.values():
                    errors.setdefault(header, []).extend(messages)
    allowed = {"delimiter", "encoding", "match_on", "on_match"}
    unknown = set(options or {}) - allowed
    if unknown:
        errors["options"] = [f"Unknown options {sorted(unknown)}; known: {sorted(allowed)}."]
    if errors:
        raise MappingError(errors)
    found = uow.session.scalars(select(ImportMapping).where(ImportMapping.name == name)).first()
    if found is None:
        found = ImportMapping(name=name, created_by_id=uow.actor_id)
        uow.session.add(found)
    found.entity = entity
    found.columns = dict(columns)
    found.options = dict(options or {})
    uow.session.flush()
    return found


def options_from_mapping(mapping: ImportMapping, options: ImportOptions) -> ImportOptions:
    """``options`` completed by a saved mapping: its columns under the explicit ones."""
    wanted = options.entity.strip().lower()
    if entity_name(mapping.entity) != ENTITIES.get(wanted, wanted):
        raise MappingError(
            {"mapping": [f"{mapping.name!r} maps {mapping.entity} files, not {options.entity}."]}
        )
    options.columns = {**mapping.columns, **(options.columns or {})}
    saved = mapping.options or {}
    if options.delimiter is None:
        options.delimiter = saved.get("delimiter")
    if options.encoding is None:
        options.encoding = saved.get("encoding")
    if options.match_on is None:
        options.match_on = saved.get("match_on")
    if options.on_match is None:
        options.on_match = saved.get("on_match")
    return options
