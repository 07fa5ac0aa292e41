"""Imports under ``/api/v1``: upload a file, poll its job, download the rejected rows.

``POST /imports`` (``multipart/form-data``) checks the upload at once (format,
options, the header against the mapping: 4xx problems naming the field), stores it
under ``<instance_path>/imports/<job id>/`` and queues the job ``crm_core.import``;
it answers ``202`` with the job and its ``Location``. ``GET /imports/{id}`` shows
status, counts, progress and the columns' fields; ``/rejections`` pages through the
refused rows and ``/report.csv`` streams them as CSV. ``POST /imports/{id}/rerun`` runs
the file a dry run kept again (another mapping, or for real) as a new job.
``/import-mappings`` holds saved mappings.

Importing needs ``<entity>.edit``; a user sees their own jobs, a user with
``audit.view`` sees everyone's. ``entity`` may also name a plugin's importer that core
runs (crm-sales's ``opportunities``): its ``permission`` is needed, and its ``run``
imports the file in the job.
"""

from __future__ import annotations

import json as jsonlib
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from apispec import APISpec
from flask import Blueprint, Response, current_app, request, stream_with_context, url_for
from marshmallow import Schema, fields
from sqlalchemy import ColumnElement, or_, select
from werkzeug.utils import secure_filename

from crm_core.authz import has_permission, owned_by_visible_users, require
from crm_core.errors import PermissionDenied
from crm_core.ids import MAX_ID
from crm_core.imports import jobs
from crm_core.imports.mapping import (
    CORE_IMPORTS,
    MappingError,
    entity_name,
    import_permission,
    import_permissions,
    plugin_importer,
)
from crm_core.imports.reading import ReadError
from crm_core.imports.runner import ImportOptions, format_for, preflight
from crm_core.models import ImportJob, ImportMapping
from crm_core.web.api.openapi import limit_parameter, page_of, problem_responses, schema_ref
from crm_core.web.api.pagination import parse_limit
from crm_core.web.api.problems import ApiProblem
from crm_core.web.api.resource import (
    _int_arg,
    api_context,
    json_body,
    json_response,
    next_page_url,
)

#: Largest upload accepted (``CRM_IMPORT_MAX_BYTES`` in the app's config overrides it).
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class ImportJobOut(Schema):
    """An import job as the API shows it."""

    id = fields.Integer(required=True)
    entity = fields.String(
        required=True,
        metadata={"description": "`customer`, `contact`, `interaction`, or the name of a "
                  "plugin's importer (`opportunities`)."},
    )
    format = fields.String(
        required=True, metadata={"description": "`csv` or `vcf` (or a plugin importer's)."}
    )
    filename = fields.String(required=True)
    status = fields.String(
        required=True, metadata={"description": "`queued`, `running`, `succeeded` or `failed`."}
    )
    dry_run = fields.Boolean(required=True)
    options = fields.Function(
        lambda job: {k: v for k, v in job.options.items() if k != "scopes"},
        required=True,
        metadata={"type": "object", "description": "Mapping and reading options."},
    )
    columns_used = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        allow_none=True,
        metadata={
            "description": "Each header of the file -> the field it filled (`\"\"`: ignored), "
            "explicit or automatic; `null` for a vCard file or before the header was read."
        },
    )
    file_expires_at = fields.AwareDateTime(
        required=True,
        allow_none=True,
        metadata={
            "description": "Until when the job keeps the file of its dry run for "
            "`POST /imports/{id}/rerun`; `null` when it keeps none (not a dry run, failed, "
            "run again already, or deleted)."
        },
    )
    total_bytes = fields.Integer(required=True, allow_none=True)
    processed_bytes = fields.Integer(required=True)
    processed_rows = fields.Integer(required=True)
    progress = fields.Function(
        jobs.progress_percent,
        required=True,
        allow_none=True,
        metadata={"type": "number", "description": "Percent of the file read."},
    )
    created = fields.Integer(attribute="created_count", required=True)
    updated = fields.Integer(attribute="updated_count", required=True)
    skipped = fields.Integer(attribute="skipped_count", required=True)
    rejected = fields.Integer(attribute="rejected_count", required=True)
    error = fields.String(
        required=True, allow_none=True, metadata={"description": "Why the whole job failed."}
    )
    created_by_id = fields.Integer(required=True, allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    started_at = fields.AwareDateTime(required=True, allow_none=True)
    finished_at = fields.AwareDateTime(required=True, allow_none=True)
    links = fields.Function(
        lambda job: {
            "self": url_for("crm_api.imports_get", job_id=job.id),
            "rejections": url_for("crm_api.imports_rejections", job_id=job.id),
            "report": url_for("crm_api.imports_report", job_id=job.id),
        },
        required=True,
        metadata={"type": "object"},
    )


class ImportRejectionOut(Schema):
    """One reason one row was refused."""

    id = fields.Integer(required=True)
    line = fields.Integer(required=True, metadata={"description": "Where the row starts."})
    column = fields.String(required=True, metadata={"description": "`\"\"`: the whole row."})
    value = fields.String(required=True, allow_none=True)
    reason = fields.String(required=True)


class ImportMappingOut(Schema):
    """A saved header-to-field mapping."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    entity = fields.String(required=True)
    columns = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    options = fields.Dict(required=True)
    created_by_id = fields.Integer(required=True, allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


class ImportRerunIn(Schema):
    """What ``POST /imports/{id}/rerun`` accepts."""

    dry_run = fields.Boolean(
        required=True, metadata={"description": "`true`: another dry run; `false`: for real."}
    )
    columns = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        load_default=None,
        allow_none=True,
        metadata={
            "description": "Header -> field (`\"\"` ignores the column), over the job's "
            "explicit columns; the others are matched automatically."
        },
    )


class ImportMappingIn(Schema):
    """What ``POST``/``PUT /import-mappings`` accept."""

    name = fields.String(required=True)
    entity = fields.String(required=True, metadata={"description": "`customers`, `contacts`..."})
    columns = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    options = fields.Dict(load_default=dict)


def register(blueprint: Blueprint) -> None:
    """Add the import routes to the API blueprint."""
    blueprint.add_url_rule("/imports", "imports_create", create_import, methods=["POST"])
    blueprint.add_url_rule("/imports", "imports_list", list_imports, methods=["GET"])
    blueprint.add_url_rule("/imports/<int:job_id>", "imports_get", get_import, methods=["GET"])
    blueprint.add_url_rule(
        "/imports/<int:job_id>/rejections", "imports_rejections", list_rejections,
        methods=["GET"],
    )
    blueprint.add_url_rule(
        "/imports/<int:job_id>/report.csv", "imports_report", report, methods=["GET"]
    )
    blueprint.add_url_rule(
        "/imports/<int:job_id>/rerun", "imports_rerun", rerun_import, methods=["POST"]
    )
    blueprint.add_url_rule(
        "/import-mappings", "import_mappings_list", list_mappings, methods=["GET"]
    )
    blueprint.add_url_rule(
        "/import-mappings", "import_mappings_create", create_mapping, methods=["POST"]
    )
    blueprint.add_url_rule(
        "/import-mappings/<int:mapping_id>", "import_mappings_get", get_mapping, methods=["GET"]
    )
    blueprint.add_url_rule(
        "/import-mappings/<int:mapping_id>", "import_mappings_put", put_mapping, methods=["PUT"]
    )
    blueprint.add_url_rule(
        "/import-mappings/<int:mapping_id>", "import_mappings_delete", delete_mapping,
        methods=["DELETE"],
    )


# -- who may do what ----------------------------------------------------------------------------

#: Holding one of these makes a user an importer: they may use the import endpoints
#: (so does the permission of a plugin's importer, see :func:`import_permissions`).
IMPORT_PERMISSIONS = ("customer.edit", "contact.edit", "interaction.edit")


def require_importer(actor: Any) -> None:
    """403 unless ``actor`` may import something (core's entities or a plugin's importer)."""
    needed = import_permissions(current_app.extensions["crm"])
    if not any(has_permission(actor, name) for name in needed):
        quoted = [repr(name) for name in needed]
        raise PermissionDenied(
            f"you need the permission {', '.join(quoted[:-1])} or {quoted[-1]}"
        )


def job_scope(actor: Any) -> ColumnElement[bool]:
    """The import jobs ``actor`` sees: their own; with ``audit.view``, those of every user
    whose records they see (own, team or all, as their role says)."""
    own = ImportJob.created_by_id == actor.id
    if not has_permission(actor, "audit.view"):
        return own
    return or_(own, owned_by_visible_users(actor, ImportJob.created_by_id))


def mapping_scope(actor: Any) -> ColumnElement[bool]:
    """Saved mappings ``actor`` sees: the system's (CLI) and those of users they see."""
    return or_(
        ImportMapping.created_by_id.is_(None),
        owned_by_visible_users(actor, ImportMapping.created_by_id),
    )


# -- jobs ---------------------------------------------------------------------------------------


def _invalid(
    errors: dict[str, Any], detail: str = "Some fields were refused; see errors."
) -> NoReturn:
    """Answer 422 with ``errors`` (field -> messages)."""
    raise ApiProblem(422, "Invalid input", detail, kind="validation", errors=errors)


def _form_options(crm: Any) -> ImportOptions:
    """The import's options from the form fields; 4xx problems name the bad ones."""
    form = request.form
    entity = form.get("entity", "")
    try:
        entity = entity_name(entity, crm)
    except MappingError as exc:
        _invalid(exc.messages)
    columns: dict[str, str] | None = None
    raw_columns = form.get("columns")
    if raw_columns:
        try:
            parsed = jsonlib.loads(raw_columns)
        except ValueError:
            raise ApiProblem(
                400, "Bad request body", "columns must be a JSON object.",
                errors={"columns": ["Not valid JSON: send an object {\"Header\": \"field\"}."]},
            ) from None
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
        ):
            raise ApiProblem(
                400, "Bad request body", "columns must map headers to field names.",
                errors={"columns": ["Send an object of strings: {\"Header\": \"field\"}."]},
            )
        columns = parsed
    dry_run = form.get("dry_run", "").strip().lower()
    if dry_run not in _TRUE + _FALSE:
        _invalid({"dry_run": ["Use true or false."]})
    return ImportOptions(
        entity=entity,
        columns=columns,
        delimiter=form.get("delimiter") or None,
        encoding=form.get("encoding") or None,
        match_on=form.get("match_on") or None,
        on_match=form.get("on_match") or None,
        dry_run=dry_run in _TRUE,
    )


def upload_limit() -> int:
    """The largest upload accepted, in bytes (``CRM_IMPORT_MAX_BYTES``, else the default)."""
    return int(current_app.config.get("CRM_IMPORT_MAX_BYTES", MAX_UPLOAD_BYTES))


def create_import(**_: Any) -> Response:
    """``POST /imports``: upload a file to import; ``202`` with the queued job."""
    crm, actor = api_context()
    require_importer(actor)
    limit = upload_limit()
    if request.content_length is not None and request.content_length > limit:
        raise ApiProblem(413, "Payload too large", f"Upload at most {limit} bytes.",
                         errors={"file": [f"Larger than {limit} bytes."]})
    if not request.mimetype.startswith("multipart/form-data"):
        raise ApiProblem(415, "Unsupported media type",
                         "Send multipart/form-data with the file in the field `file`.")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        _invalid({"file": ["Upload the file to import in the field `file`."]})
    assert upload is not None and upload.filename
    options = _form_options(crm)
    job_id, _detected = queue_import(
        crm, actor, upload.filename, upload.save, options,
        mapping=request.form.get("mapping") or None, source="api",
    )
    with crm.session_factory() as session:
        found = session.get(ImportJob, job_id)
        body = ImportJobOut().dump(found)
    location = url_for("crm_api.imports_get", job_id=job_id)
    return json_response(body, status=202, headers={"Location": location})


def queue_import(
    crm: Any,
    actor: Any,
    filename: str,
    save: Callable[[Path], Any],
    options: ImportOptions,
    *,
    mapping: str | None = None,
    source: str = "api",
) -> tuple[int, dict[str, Any]]:
    """Check an upload, store it for its job and queue the job (the API's and the UI's upload).

    ``save(path)`` writes the uploaded file to ``path``; ``mapping`` names a saved
    mapping to apply. Needs ``<entity>.edit`` (a plugin's importer: its permission);
    ``options.entity`` is as :func:`~crm_core.imports.mapping.entity_name` returns it.
    Returns the job's id and what :func:`~crm_core.imports.runner.preflight` detected
    (the columns' targets...); refusals are 4xx :class:`ApiProblem` naming the field
    (``file``, ``columns``...).
    """
    require(actor, import_permission(crm, options.entity))
    limit = upload_limit()
    try:
        options.format = format_for(filename, plugin_importer(crm, options.entity))
        if mapping:
            with crm.session_factory() as session:
                jobs.options_from_mapping(jobs.find_mapping(session, mapping), options)
        options.checked(crm)
    except MappingError as exc:
        _invalid(exc.messages)
    folder = jobs.uploads_folder(crm)
    staging = folder / f"upload-{uuid.uuid4().hex}"
    staging.mkdir(parents=True, exist_ok=True)
    stored_name = secure_filename(filename) or f"upload.{options.format}"
    path = staging / stored_name
    try:
        save(path)
        if path.stat().st_size > limit:
            raise ApiProblem(413, "Payload too large", f"Upload at most {limit} bytes.",
                             errors={"file": [f"Larger than {limit} bytes."]})
        try:
            detected = preflight(crm, path, options)
        except MappingError as exc:
            _invalid({"columns": exc.messages}, "The file's columns do not fit the mapping.")
        except ReadError as exc:
            _invalid({"file": [str(exc)]}, "The file cannot be read.")
        with crm.unit_of_work(actor=actor, source=source) as uow:
            job = jobs.create_job(
                uow,
                path=path,
                filename=filename,
                options=options,
                scopes=getattr(actor, "scopes", ()),
            )
            final = folder / str(job.id)
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
            job.path = str(final / stored_name)
            job_id = job.id
            jobs.enqueue_after_commit(uow, job_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return job_id, detected


def find_job(session: Any, actor: Any, job_id: int) -> ImportJob | None:
    """The job ``job_id`` if ``actor`` may see it (see :func:`job_scope`), else ``None``."""
    if job_id > MAX_ID:
        return None
    statement = select(ImportJob).where(ImportJob.id == job_id, job_scope(actor))
    return session.scalars(statement).first()


def _visible_job(session: Any, actor: Any, job_id: int) -> ImportJob:
    """The job ``job_id`` if ``actor`` may see it (403 for a non-importer, else 404)."""
    require_importer(actor)
    job = find_job(session, actor, job_id)
    if job is None:
        raise ApiProblem(404, "Not found", f"No import {job_id}.", kind="not-found")
    return job


def rerun_import(job_id: int, **_: Any) -> Response:
    """``POST /imports/<id>/rerun``: run the file a dry run kept again; ``202`` with the new job.

    ``404`` for a job the caller does not see, ``403`` for another user's, ``409`` when
    the job has not finished or keeps no file, ``422`` when the file does not fit ``columns``.
    """
    crm, actor = api_context()
    with crm.session_factory() as session:
        _visible_job(session, actor, job_id)
    data = _rerun_input()
    try:
        with crm.unit_of_work(actor=actor, source="api") as uow:
            new_id = jobs.rerun(uow, job_id, dry_run=data["dry_run"], columns=data["columns"]).id
    except jobs.RerunError as exc:
        raise ApiProblem(409, "Cannot run again", str(exc), kind="conflict") from exc
    except MappingError as exc:
        _invalid({"columns": exc.messages}, "The file's columns do not fit the mapping.")
    except ReadError as exc:
        _invalid({"file": [str(exc)]}, "The file cannot be read.")
    with crm.session_factory() as session:
        body = ImportJobOut().dump(session.get(ImportJob, new_id))
    location = url_for("crm_api.imports_get", job_id=new_id)
    return json_response(body, status=202, headers={"Location": location})


def _rerun_input() -> dict[str, Any]:
    from marshmallow import ValidationError as SchemaError

    try:
        return ImportRerunIn().load(json_body())
    except SchemaError as exc:
        _invalid(exc.messages)  # type: ignore[arg-type]


def list_imports() -> Response:
    """``GET /imports``: the import jobs the caller sees (see :func:`job_scope`), newest first."""
    crm, actor = api_context()
    require_importer(actor)
    limit = parse_limit(request.args.get("limit"))
    statement = (
        select(ImportJob).where(job_scope(actor)).order_by(ImportJob.id.desc()).limit(limit + 1)
    )
    before_id = _int_arg("before_id")
    if before_id is not None:
        statement = statement.where(ImportJob.id < before_id)
    with crm.session_factory() as session:
        found = list(session.scalars(statement))
        page = found[:limit]
        body: dict[str, Any] = {"data": ImportJobOut(many=True).dump(page), "next": None}
    if len(found) > limit:
        body["next"] = next_page_url(before_id=str(page[-1].id), limit=str(limit))
    return json_response(body)


def get_import(job_id: int) -> Response:
    """``GET /imports/<id>``: status, counts and progress of one import."""
    crm, actor = api_context()
    with crm.session_factory() as session:
        return json_response(ImportJobOut().dump(_visible_job(session, actor, job_id)))


def list_rejections(job_id: int) -> Response:
    """``GET /imports/<id>/rejections``: the refused rows, in file order, keyset-paginated."""
    crm, actor = api_context()
    limit = parse_limit(request.args.get("limit"))
    after_id = _int_arg("after_id")
    with crm.session_factory() as session:
        _visible_job(session, actor, job_id)
        found = jobs.rejections(session, job_id, after_id=after_id, limit=limit + 1)
        page = found[:limit]
        body: dict[str, Any] = {"data": ImportRejectionOut(many=True).dump(page), "next": None}
    if len(found) > limit:
        body["next"] = next_page_url(after_id=str(page[-1].id), limit=str(limit))
    return json_response(body)


def report(job_id: int) -> Response:
    """``GET /imports/<id>/report.csv``: every refused row as CSV, streamed."""
    crm, actor = api_context()
    with crm.session_factory() as session:
        job = _visible_job(session, actor, job_id)
        return report_response(crm, job)


def report_response(crm: Any, job: ImportJob) -> Response:
    """The report of ``job`` (checked visible) as a streamed CSV attachment."""
    name = Path(job.filename).stem or "import"
    return Response(
        stream_with_context(jobs.report_lines(crm, job.id)),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{secure_filename(name)}-rejected.csv"'
        },
    )


# -- saved mappings -----------------------------------------------------------------------------


def _mapping_input() -> dict[str, Any]:
    from marshmallow import ValidationError as SchemaError

    try:
        return ImportMappingIn().load(json_body())
    except SchemaError as exc:
        _invalid(exc.messages)  # type: ignore[arg-type]


def _save(actor: Any, data: dict[str, Any], existing_id: int | None = None) -> Response:
    crm = current_app.extensions["crm"]
    try:
        with crm.unit_of_work(actor=actor, source="api") as uow:
            clash = mapping_name_taken(uow.session, data["name"], existing_id)
            if clash is not None:
                raise ApiProblem(409, "Conflict", f"A mapping named {clash.name!r} exists.",
                                 kind="conflict", errors={"name": ["Already taken."]})
            if existing_id is not None:
                current = _mapping(uow.session, actor, existing_id)
                require(actor, f"{entity_name(current.entity)}.edit")
                current.name = data["name"].strip()
                uow.session.flush()
            saved = jobs.save_mapping(
                uow, data["name"], data["entity"], data["columns"], data["options"]
            )
            body = ImportMappingOut().dump(saved)
    except MappingError as exc:
        _invalid(exc.messages)
    status = 200 if existing_id is not None else 201
    headers = {"Location": url_for("crm_api.import_mappings_get", mapping_id=body["id"])}
    return json_response(body, status=status, headers=headers)


def mapping_name_taken(
    session: Any, name: str, existing_id: int | None = None
) -> ImportMapping | None:
    """Another saved mapping (not ``existing_id``) already called ``name``, if any."""
    clash = session.scalars(
        select(ImportMapping).where(ImportMapping.name == name.strip())
    ).first()
    return clash if clash is not None and clash.id != existing_id else None


def list_mappings() -> Response:
    """``GET /import-mappings``: the saved mappings the caller sees, by name."""
    crm, actor = api_context()
    require_importer(actor)
    with crm.session_factory() as session:
        found = list(
            session.scalars(
                select(ImportMapping).where(mapping_scope(actor)).order_by(ImportMapping.name)
            )
        )
        return json_response({"data": ImportMappingOut(many=True).dump(found), "next": None})


def create_mapping(**_: Any) -> Response:
    """``POST /import-mappings``: save a mapping (``<entity>.edit``)."""
    _crm, actor = api_context()
    require_importer(actor)
    return _save(actor, _mapping_input())


def _mapping(session: Any, actor: Any, mapping_id: int) -> ImportMapping:
    """Mapping ``mapping_id`` if ``actor`` sees it (403 for a non-importer, else 404)."""
    require_importer(actor)
    found = None
    if mapping_id <= MAX_ID:
        found = session.scalars(
            select(ImportMapping).where(ImportMapping.id == mapping_id, mapping_scope(actor))
        ).first()
    if found is None:
        raise ApiProblem(404, "Not found", f"No mapping {mapping_id}.", kind="not-found")
    return found


def get_mapping(mapping_id: int) -> Response:
    """``GET /import-mappings/<id>``."""
    crm, actor = api_context()
    with crm.session_factory() as session:
        return json_response(ImportMappingOut().dump(_mapping(session, actor, mapping_id)))


def put_mapping(mapping_id: int, **_: Any) -> Response:
    """``PUT /import-mappings/<id>``: replace a mapping (``<entity>.edit``)."""
    crm, actor = api_context()
    with crm.session_factory() as session:
        _mapping(session, actor, mapping_id)
    return _save(actor, _mapping_input(), mapping_id)


def delete_mapping(mapping_id: int, **_: Any) -> Response:
    """``DELETE /import-mappings/<id>`` (``<entity>.edit``): ``204``."""
    crm, actor = api_context()
    with crm.unit_of_work(actor=actor, source="api") as uow:
        found = _mapping(uow.session, actor, mapping_id)
        require(actor, f"{entity_name(found.entity)}.edit")
        uow.session.delete(found)
    return Response(status=204)


# -- the OpenAPI description ----------------------------------------------------------------------


def describe(spec: APISpec, importers: Sequence[str] = ()) -> None:
    """Add the import operations to the OpenAPI document being built; ``importers`` are the
    names of the plugins' importers that ``entity`` may also take."""
    tag = "imports"
    spec.tag({"name": tag, "description": "CSV and vCard imports, their reports, saved mappings."})
    job = {"application/json": {"schema": schema_ref(spec, ImportJobOut, "ImportJob")}}
    mapping = {"application/json": {"schema": schema_ref(spec, ImportMappingOut, "ImportMapping")}}
    mapping_input = {
        "application/json": {
            "schema": schema_ref(spec, ImportMappingIn, "ImportMappingInput", output=False)
        }
    }
    rerun_input = {
        "application/json": {
            "schema": schema_ref(spec, ImportRerunIn, "ImportRerunInput", output=False)
        }
    }
    job_id = {"name": "job_id", "in": "path", "required": True,
              "schema": {"type": "integer", "minimum": 0}}
    mapping_id = {"name": "mapping_id", "in": "path", "required": True,
                  "schema": {"type": "integer", "minimum": 0}}
    location = {
        "Location": {
            "description": "The URL to poll.",
            "required": True,
            "schema": {"type": "string", "format": "uri-reference"},
        }
    }
    too_large = "PayloadTooLarge"
    if too_large not in spec.components.responses:
        spec.components.response(
            too_large,
            {
                "description": "The upload is larger than the import size limit.",
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            },
        )
    text = {"type": "string"}
    upload = {
        "type": "object",
        "required": ["file", "entity"],
        "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "A .csv (.tsv, .txt) or .vcf file (or a file of a "
                     "format a plugin's importer reads)."},
            "entity": {
                "type": "string",
                "enum": [*CORE_IMPORTS, *importers],
                "description": "What the file holds: core's entities, or the name of a "
                "plugin's importer, which then imports the file (`match_on` and `on_match` "
                "are core's entities' only).",
            },
            "mapping": {**text, "description": "A saved mapping's name."},
            "columns": {**text, "description": "JSON object: header -> field (`\"\"` ignores)."},
            "match_on": {"type": "string", "enum": ["auto", "external_id", "email", "none"]},
            "on_match": {"type": "string", "enum": ["update", "skip", "create"]},
            "dry_run": {"type": "string", "enum": ["true", "false"]},
            "delimiter": {**text, "description": "One character; default: detected."},
            "encoding": {**text, "description": "Default: detected (BOM, UTF-8, cp1252...)."},
        },
    }

    def page(schema: type[Schema], name: str, what: str) -> dict[str, Any]:
        item = schema_ref(spec, schema, name)
        return {"application/json": {"schema": page_of(item, f"A page of {what}.")}}

    spec.path(
        path="/imports",
        operations={
            "post": {
                "operationId": "imports_create",
                "tags": [tag],
                "summary": "Upload a file to import",
                "description": "Checks the upload (format, options, header against the "
                "mapping) and queues the import. Needs `<entity>.edit` (for a plugin's "
                "importer, the permission it names).",
                "requestBody": {"required": True,
                                "content": {"multipart/form-data": {"schema": upload}}},
                "responses": {
                    "202": {"description": "Queued.", "headers": location, "content": job},
                    **problem_responses(400, 401, 403, 415, 422),
                    "413": {"$ref": f"#/components/responses/{too_large}"},
                },
            },
            "get": {
                "operationId": "imports_list",
                "tags": [tag],
                "summary": "List imports",
                "description": "The caller's imports, newest first; everyone's with "
                "`audit.view`.",
                "parameters": [
                    limit_parameter(),
                    {"name": "before_id", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}},
                ],
                "responses": {
                    "200": {"description": "One page.",
                            "content": page(ImportJobOut, "ImportJob", "imports")},
                    **problem_responses(400, 401),
                },
            },
        },
    )
    spec.path(
        path="/imports/{job_id}",
        parameters=[job_id],
        operations={
            "get": {
                "operationId": "imports_get",
                "tags": [tag],
                "summary": "Status and counts of an import",
                "responses": {"200": {"description": "The job.", "content": job},
                              **problem_responses(401, 404)},
            }
        },
    )
    spec.path(
        path="/imports/{job_id}/rejections",
        parameters=[job_id],
        operations={
            "get": {
                "operationId": "imports_rejections",
                "tags": [tag],
                "summary": "Rejected rows of an import",
                "parameters": [
                    limit_parameter(),
                    {"name": "after_id", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}},
                ],
                "responses": {
                    "200": {"description": "One page.",
                            "content": page(ImportRejectionOut, "ImportRejection", "rejections")},
                    **problem_responses(400, 401, 404),
                },
            }
        },
    )
    spec.path(
        path="/imports/{job_id}/report.csv",
        parameters=[job_id],
        operations={
            "get": {
                "operationId": "imports_report",
                "tags": [tag],
                "summary": "Rejected rows as CSV",
                "description": "`line,column,value,reason`, one line per reason.",
                "responses": {
                    "200": {"description": "The report.",
                            "content": {"text/csv": {"schema": {"type": "string"}}}},
                    **problem_responses(401, 404),
                },
            }
        },
    )
    spec.path(
        path="/imports/{job_id}/rerun",
        parameters=[job_id],
        operations={
            "post": {
                "operationId": "imports_rerun",
                "tags": [tag],
                "summary": "Run a dry run's file again",
                "description": "Queues a new job for the file a dry run kept (24 hours, see "
                "`file_expires_at`): the same options, `columns` over the explicit ones, "
                "another dry run or for real. The new job takes the file over. Only the "
                "job's creator may, with `<entity>.edit`; 409 when the job has not "
                "finished or keeps no file (upload it again).",
                "requestBody": {"required": True, "content": rerun_input},
                "responses": {
                    "202": {"description": "Queued.", "headers": location, "content": job},
                    **problem_responses(400, 401, 403, 404, 409, 415, 422),
                },
            }
        },
    )
    spec.path(
        path="/import-mappings",
        operations={
            "get": {
                "operationId": "import_mappings_list",
                "tags": [tag],
                "summary": "List saved mappings",
                "responses": {
                    "200": {"description": "Every mapping.",
                            "content": page(ImportMappingOut, "ImportMapping", "mappings")},
                    **problem_responses(401),
                },
            },
            "post": {
                "operationId": "import_mappings_create",
                "tags": [tag],
                "summary": "Save a mapping",
                "description": "Needs `<entity>.edit`.",
                "requestBody": {"required": True, "content": mapping_input},
                "responses": {
                    "201": {"description": "Saved.", "headers": location, "content": mapping},
                    **problem_responses(400, 401, 403, 409, 415, 422),
                },
            },
        },
    )
    spec.path(
        path="/import-mappings/{mapping_id}",
        parameters=[mapping_id],
        operations={
            "get": {
                "operationId": "import_mappings_get",
                "tags": [tag],
                "summary": "Get a mapping",
                "responses": {"200": {"description": "The mapping.", "content": mapping},
                              **problem_responses(401, 404)},
            },
            "put": {
                "operationId": "import_mappings_put",
                "tags": [tag],
                "summary": "Replace a mapping",
                "requestBody": {"required": True, "content": mapping_input},
                "responses": {
                    "200": {"description": "Saved.", "headers": location, "content": mapping},
                    **problem_responses(400, 401, 403, 404, 409, 415, 422),
                },
            },
            "delete": {
                "operationId": "import_mappings_delete",
                "tags": [tag],
                "summary": "Delete a mapping",
                "responses": {"204": {"description": "Deleted."},
                              **problem_responses(401, 403, 404)},
            },
        },
    )


__all__ = ["describe", "register"]
