"""Import pages: upload a file, follow its job, change its mapping, import it for real.

``/imports`` lists the import jobs the user sees (their own; everyone's they may see
with ``audit.view``, as in the API), newest first and keyset-paged, above the upload
form. An upload goes through the API's own
:func:`~crm_core.web.api.imports.queue_import`: the same checks, the same stored file,
the same job ``crm_core.import``. ``/imports/<id>`` shows the job: status and progress
(the page refreshes itself while the job is queued or running), the header -> field
mapping used (the job's ``columns_used``), the counts, the first rejected rows and the
whole report as CSV.

A dry run keeps its file for a day (core's
:data:`~crm_core.imports.jobs.KEEP_DRY_RUN_FILE`): *Run again with this mapping* and
*Import for real* call core's :func:`~crm_core.imports.jobs.rerun`, as the API's
``POST /imports/{id}/rerun`` does. Only the user who uploaded a file may run it again.
The UI keeps no state of its own outside the database.

The plugins' importers that core runs (crm-sales's *Deals*) are offered beside core's
entities to the users holding their permission; their jobs show the same pages (no
matching options, no saved mappings; a dry run's columns can be mapped again when the
importer lists its ``targets``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.authz import has_permission
from crm_core.errors import NotFoundError
from crm_core.extensions import Importer
from crm_core.imports import jobs
from crm_core.imports.mapping import (
    MappingError,
    available_targets,
    entity_name,
    import_permission,
    plugin_importer,
    plugin_importers,
)
from crm_core.imports.reading import ReadError
from crm_core.imports.runner import ImportOptions
from crm_core.models import ImportJob, ImportMapping, ImportStatus, User
from crm_core.runtime import CRM
from crm_core.web.api.imports import (
    find_job,
    job_scope,
    mapping_name_taken,
    mapping_scope,
    queue_import,
    report_response,
    require_importer,
    upload_limit,
)
from crm_core.web.api.pagination import int_bounds
from crm_core.web.api.problems import ApiProblem
from crm_core.web.i18n import number
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.forms import field_errors
from crm_core.web.ui.paging import Keyset, split_page

#: Import jobs per page of the list.
PAGE_SIZE = 25
#: Rejected rows shown on a job's page (the report has them all).
REJECTIONS_SHOWN = 50
#: What can be imported: form value -> label.
ENTITIES = {
    "customers": _l("Customers"), "contacts": _l("Contacts"), "interactions": _l("Interactions"),
}


@dataclass(frozen=True)
class EntityLabels:
    """How the pages name what a job imports: one, several, several as a title."""

    one: str
    many: str
    title: str


#: What a job or a saved mapping imports (its ``entity``) -> how the pages name it.
ENTITY_LABELS = {
    "customer": EntityLabels(_l("customer"), _l("customers"), _l("Customers")),
    "contact": EntityLabels(_l("contact"), _l("contacts"), _l("Contacts")),
    "interaction": EntityLabels(_l("interaction"), _l("interactions"), _l("Interactions")),
}
#: How records are matched: form value (stored in the job's options) -> label.
MATCH_ON = {
    "auto": _l("auto"), "external_id": _l("external_id"), "email": _l("email"), "none": _l("none"),
}
#: What happens to a matched record: form value -> label.
ON_MATCH = {"update": _l("update"), "skip": _l("skip"), "create": _l("create")}
#: A job's stored status -> the word the pages show.
STATUS_LABELS = {
    ImportStatus.QUEUED.value: _l("queued"),
    ImportStatus.RUNNING.value: _l("running"),
    ImportStatus.SUCCEEDED.value: _l("succeeded"),
    ImportStatus.FAILED.value: _l("failed"),
}
#: Labelled email and phone targets offered for contacts (any ``email.<label>`` works).
CONTACT_LABELLED = (
    "email.work", "email.home", "email.other",
    "phone.work", "phone.home", "phone.mobile", "phone.other",
)
_UNFINISHED = (ImportStatus.QUEUED.value, ImportStatus.RUNNING.value)
#: The order of the list: newest (highest id) first.
NEWEST_FIRST = Keyset(
    "id", ImportJob.id, ImportJob.id, descending=True, python_type=int,
    id_bounds=int_bounds(ImportJob.id),
)


# -- the list and the upload form -------------------------------------------------------------


@blueprint.get("/imports", endpoint="imports")
@page
def imports_list() -> ResponseReturnValue:
    """The import jobs the user sees, newest first, and the upload form."""
    user = actor()
    require_importer(user)
    entities = _entity_options(user)
    values = {"entity": entities[0][0] if entities else "", "dry_run": "true"}
    return _imports_page(values, {})


@blueprint.post("/imports", endpoint="upload_import")
@page
def upload_import() -> ResponseReturnValue:
    """Upload a file: checked and queued as the API's upload; then the job's page."""
    crm, user = current_crm(), actor()
    require_importer(user)
    limit = upload_limit()
    if request.content_length is not None and request.content_length > limit:
        # Refused before the body is read: the form comes back empty.
        too_large = _("Larger than %(limit)s bytes.", limit=number(limit))
        return _imports_page({}, {"file": [too_large]}, status=413)
    values = request.form.to_dict()
    upload = request.files.get("file")
    errors: dict[str, list[str]] = {}
    if upload is None or not upload.filename:
        errors["file"] = [_("Choose the file to import.")]
    entity = ""
    try:
        entity = entity_name(values.get("entity", ""), crm)
    except MappingError as exc:
        errors.update(exc.messages)
    if errors:
        return _imports_page(values, errors, status=422)
    assert upload is not None and upload.filename
    options = ImportOptions(
        entity=entity,
        delimiter=values.get("delimiter") or None,
        encoding=(values.get("encoding") or "").strip() or None,
        match_on=values.get("match_on") or None,
        on_match=values.get("on_match") or None,
        dry_run="dry_run" in request.form,
    )
    try:
        job_id, _detected = queue_import(
            crm, user, upload.filename, upload.save, options,
            mapping=values.get("mapping") or None, source="ui",
        )
    except ApiProblem as exc:
        return _imports_page(values, _problem_errors(exc), status=exc.status)
    if options.dry_run:
        flash(_("%(file)s was uploaded for a dry run.", file=upload.filename))
    else:
        flash(_("%(file)s was uploaded.", file=upload.filename))
    return redirect(url_for("crm_ui.import_page", job_id=job_id))


def _imports_page(
    values: dict[str, Any], errors: dict[str, list[str]], *, status: int = 200
) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    cursor = NEWEST_FIRST.cursor()
    statement = NEWEST_FIRST.page(select(ImportJob).where(job_scope(user)), cursor, PAGE_SIZE)
    with crm.session_factory() as session:
        found = list(session.scalars(statement))
        rows, next_url = split_page(
            found, PAGE_SIZE,
            lambda last: url_for("crm_ui.imports", cursor=NEWEST_FIRST.token(last)),
        )
        names = _user_names(session, {row.created_by_id for row in rows} - {user.id})
        mappings = list(
            session.execute(
                select(ImportMapping.name, ImportMapping.entity)
                .where(mapping_scope(user))
                .order_by(ImportMapping.name)
            )
        )
    return render_template(
        "crm_core/ui/imports/list.html",
        jobs=rows,
        names=names,
        next_url=next_url,
        first_page=cursor is not None,
        values=values,
        errors=errors,
        entity_options=_entity_options(user),
        match_options=list(MATCH_ON.items()),
        on_match_options=list(ON_MATCH.items()),
        mapping_options=[(row.name, _mapping_text(row.name, row.entity)) for row in mappings],
        limit=upload_limit(),
        accept=_accepted_extensions(crm),
        entity_labels=_entity_labels(crm),
        status_labels=STATUS_LABELS,
    ), status


# -- one job ------------------------------------------------------------------------------------


@blueprint.get("/imports/<int:job_id>")
@page
def import_page(job_id: int) -> ResponseReturnValue:
    """The job: status, progress, mapping, counts, the first rejected rows, what to do next."""
    return _job_page(job_id)


@blueprint.get("/imports/<int:job_id>/report.csv")
@page
def import_report(job_id: int) -> ResponseReturnValue:
    """Every rejected row of the job as CSV (the API's ``report.csv``), streamed."""
    crm, user = current_crm(), actor()
    with crm.session_factory() as session:
        return report_response(crm, _job(session, user, job_id))


@blueprint.post("/imports/<int:job_id>/again")
@page
def rerun_import(job_id: int) -> ResponseReturnValue:
    """Dry-run the kept file again with the columns mapped as the form says."""
    with current_crm().session_factory() as session:
        job = _job(session, actor(), job_id)
    changed: dict[str, str] = {}
    values: dict[str, str] = {}
    for index, (header, used) in enumerate((job.columns_used or {}).items()):
        chosen = request.form.get(f"column-{index}")
        if chosen is None:
            continue
        values[f"column-{index}"] = chosen
        if chosen.strip() != used:
            changed[header] = chosen.strip()
    try:
        new_id = _run_again(job_id, dry_run=True, columns=changed)
    except (MappingError, ReadError) as exc:
        errors = _rerun_errors(exc)
        return _job_page(job_id, mapping_errors=errors, mapping_values=values, status=422)
    except jobs.RerunError as exc:
        return _cannot_rerun(job_id, exc)
    flash(_("The dry run runs again with your mapping."))
    return redirect(url_for("crm_ui.import_page", job_id=new_id))


@blueprint.post("/imports/<int:job_id>/import")
@page
def import_for_real(job_id: int) -> ResponseReturnValue:
    """Import the file of a dry run for real: the same file, the same options."""
    with current_crm().session_factory() as session:
        job = _job(session, actor(), job_id)
    if not job.dry_run or job.status != ImportStatus.SUCCEEDED.value:
        abort(400)
    try:
        new_id = _run_again(job_id, dry_run=False)
    except (MappingError, ReadError) as exc:
        return _job_page(job_id, mapping_errors=_rerun_errors(exc), status=422)
    except jobs.RerunError as exc:
        return _cannot_rerun(job_id, exc)
    flash(_("%(file)s is being imported for real.", file=job.filename))
    return redirect(url_for("crm_ui.import_page", job_id=new_id))


@blueprint.post("/imports/<int:job_id>/mapping")
@page
def save_import_mapping(job_id: int) -> ResponseReturnValue:
    """Save the mapping the job used under a name (as ``POST /import-mappings``)."""
    crm, user = current_crm(), actor()
    with crm.session_factory() as session:
        job = _job(session, user, job_id)
    explicit = job.options.get("columns") or {}
    columns = {
        header: target
        for header, target in _used_columns(job).items()
        if target or header in explicit  # columns ignored automatically need no entry
    }
    if not columns:
        abort(400)
    name = request.form.get("name", "").strip()
    saved_options = {
        key: job.options[key]
        for key, default in (("delimiter", None), ("encoding", None),
                             ("match_on", "auto"), ("on_match", "update"))
        if job.options.get(key) not in (None, "", default)
    }
    status = 422
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            if name and mapping_name_taken(uow.session, name) is not None:
                status = 409
                taken = _("A mapping named '%(name)s' exists already.", name=name)
                raise MappingError({"name": [taken]})
            jobs.save_mapping(uow, name, job.entity, columns, saved_options)
    except MappingError as exc:
        errors = field_errors(exc.messages)
        return _job_page(job_id, save_errors=errors, save_values={"name": name}, status=status)
    flash(_("The mapping “%(name)s” was saved.", name=name))
    return redirect(url_for("crm_ui.import_page", job_id=job_id))


def _job_page(
    job_id: int,
    *,
    mapping_errors: dict[str, list[str]] | None = None,
    mapping_values: dict[str, str] | None = None,
    save_errors: dict[str, list[str]] | None = None,
    save_values: dict[str, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    with crm.session_factory() as session:
        job = _job(session, user, job_id)
        rejections = jobs.rejections(session, job.id, limit=REJECTIONS_SHOWN + 1)
        by = _user_names(session, {job.created_by_id} - {user.id}).get(job.created_by_id or 0)
    kept = jobs.kept_file(job) is not None
    own = job.created_by_id == user.id
    may_edit = has_permission(user, import_permission(crm, job.entity))
    finished = job.status not in _UNFINISHED
    columns = _used_columns(job)
    targets = _targets(crm, job.entity, columns.values())
    values = mapping_values or {
        f"column-{index}": target for index, target in enumerate(columns.values())
    }
    return render_template(
        "crm_core/ui/imports/job.html",
        job=job,
        by=by,
        refresh=not finished,
        percent=jobs.progress_percent(job),
        rejections=rejections[:REJECTIONS_SHOWN],
        more_rejections=len(rejections) > REJECTIONS_SHOWN,
        delimiter=_delimiter_text(job.options.get("delimiter") or ""),
        columns_known=job.columns_used is not None,
        columns=list(columns.items()),
        kept=kept,
        can_rerun=own and kept and may_edit and finished and job.format == "csv"
        and bool(targets),
        can_import=own and kept and may_edit and job.dry_run
        and job.status == ImportStatus.SUCCEEDED.value,
        can_save=may_edit and bool(columns) and job.entity in ENTITY_LABELS,
        targets=targets,
        values=values,
        entity_labels=_entity_labels(crm),
        status_labels=STATUS_LABELS,
        match_labels=MATCH_ON,
        match_entities=ENTITY_LABELS,
        on_match_labels=ON_MATCH,
        mapping_errors=mapping_errors or {},
        save_errors=save_errors or {},
        save_values=save_values or {},
    ), status


# -- helpers: jobs, permissions, options ------------------------------------------------------


def _job(session: Session, user: Any, job_id: int) -> ImportJob:
    """The job if the user sees it, as the API decides (403 for a non-importer, else 404)."""
    require_importer(user)
    job = find_job(session, user, job_id)
    if job is None:
        raise NotFoundError("import", job_id)
    return job


def _run_again(job_id: int, *, dry_run: bool, columns: dict[str, str] | None = None) -> int:
    """Core's :func:`~crm_core.imports.jobs.rerun` of the user's job (checked visible); the
    new job's id. Raises what ``rerun`` raises (another user's job: ``PermissionDenied``)."""
    with current_crm().unit_of_work(actor=actor(), source="ui") as uow:
        return jobs.rerun(uow, job_id, dry_run=dry_run, columns=columns or None).id


def _rerun_errors(exc: MappingError | ReadError) -> dict[str, list[str]]:
    """Why the file could not run again, under ``columns`` (the mapping) or ``file``."""
    if isinstance(exc, MappingError):
        return field_errors({"columns": exc.messages})
    return {"file": [str(exc)]}


def _cannot_rerun(job_id: int, error: jobs.RerunError) -> ResponseReturnValue:
    """Back to the job's page, saying why it cannot run again (its file is gone...)."""
    text = str(error)
    flash(f"{text[:1].upper()}{text[1:]}.")
    return redirect(url_for("crm_ui.import_page", job_id=job_id))


def _used_columns(job: ImportJob) -> dict[str, str]:
    """Header -> target the job used (only the explicit ones before its header was read)."""
    if job.columns_used is not None:
        return dict(job.columns_used)
    return dict(job.options.get("columns") or {})


def _entity_options(user: Any) -> list[tuple[str, str]]:
    """What the user may import (``<entity>.edit``, a plugin importer's permission), as
    select options: core's entities, then the plugins' importers."""
    core = [
        (value, label)
        for value, label in ENTITIES.items()
        if has_permission(user, f"{entity_name(value)}.edit")
    ]
    return core + [
        (importer.name, _label(importer))
        for importer in plugin_importers(current_crm())
        if has_permission(user, importer.permission)
    ]


def _label(importer: Importer) -> str:
    """How the pages name what a plugin's importer imports."""
    return str(importer.label or importer.name)


def _entity_labels(crm: CRM) -> dict[str, EntityLabels]:
    """:data:`ENTITY_LABELS`, and a plugin's importer's label by its name (a job's entity)."""
    labels = dict(ENTITY_LABELS)
    for importer in plugin_importers(crm):
        label = _label(importer)
        labels[importer.name] = EntityLabels(label, label, label)
    return labels


def _accepted_extensions(crm: CRM) -> str:
    """The upload's ``accept``: core's extensions, then those of the importers' formats."""
    extensions = [".csv", ".tsv", ".txt", ".vcf", ".vcard"]
    for importer in plugin_importers(crm):
        extensions += [f".{name}" for name in importer.formats if name not in ("csv", "vcf")]
    return ",".join(dict.fromkeys(extensions))


def _targets(crm: CRM, entity: str, used: Any) -> list[str]:
    """The targets a column of an ``entity`` file may name, for the mapping's selects
    (a plugin's importer: its ``targets``, none if it lists none)."""
    if entity not in ENTITY_LABELS:
        importer = plugin_importer(crm, entity)
        offered = set(importer.targets if importer is not None else ())
        return sorted(offered | {t for t in used if t}) if offered else []
    names = set(available_targets(crm, entity))
    if entity == "contact":
        names.update(CONTACT_LABELLED)
    names.update(target for target in used if target)
    return sorted(names)


def _delimiter_text(delimiter: str) -> str:
    """How the page names a delimiter."""
    names = {"\t": _("tab"), " ": _("space"), "": _("detected")}
    return names.get(delimiter, delimiter)


def _mapping_text(name: str, entity: str) -> str:
    """A saved mapping as the upload form offers it: its name and what it imports."""
    labels = ENTITY_LABELS.get(entity)
    return _("%(name)s (%(entity)s)", name=name, entity=labels.one if labels else entity)


def _problem_errors(problem: ApiProblem) -> dict[str, list[str]]:
    """An upload's refusal as field messages, each under the form field it is about."""
    errors = field_errors(problem.errors) if isinstance(problem.errors, dict) else {}
    if "format" in errors:  # the file's extension decides the format
        errors.setdefault("file", []).extend(errors.pop("format"))
    unknown_encoding = [m for m in errors.get("file", []) if m.startswith("unknown encoding")]
    if unknown_encoding:
        errors["file"] = [m for m in errors["file"] if m not in unknown_encoding]
        errors["encoding"] = unknown_encoding
        if not errors["file"]:
            del errors["file"]
    return errors or {"file": [problem.detail or problem.title]}


def _user_names(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = sorted(ident for ident in ids if ident is not None)
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.name, User.email).where(User.id.in_(wanted)))
    return {row.id: row.name or row.email for row in rows}
