"""What an import job keeps for running again: the columns it used, a dry run's file, reruns.

Jobs here are made as the API's upload makes them (the file under the uploads folder)
and run with :func:`run_import_job`; with the test setting ``queue_url = "memory://"``
the job :func:`rerun` queues runs as soon as its unit of work commits.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_core.db import utcnow
from crm_core.errors import NotFoundError, PermissionDenied
from crm_core.imports import ImportOptions, MappingError, create_job, format_for, run_import_job
from crm_core.imports.jobs import (
    KEEP_DRY_RUN_FILE,
    RerunError,
    kept_file,
    prune_kept_files,
    rerun,
    uploads_folder,
)
from crm_core.models import Customer, ImportJob
from crm_core.security import ScopedActor
from crm_core.testing import make_user

pytestmark = pytest.mark.plugins()

FIRMS = "Company,Town,Notes\nAcme,Berlin,wholesale\nBeta,Rom,retail\n"
CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Kowalska;Ada;;;\r\nFN:Ada Kowalska\r\nEND:VCARD\r\n"


@pytest.fixture
def clerk(crm: Any) -> Any:
    return make_user(crm, "clerk@reruns.example", ["customer.view", "customer.edit"])


def queued(crm: Any, actor: Any, text: str = FIRMS, name: str = "firms.csv", *,
           entity: str = "customers", dry_run: bool = True, **options: Any) -> int:
    """A queued job for an uploaded file (stored as the API's upload stores it)."""
    folder = uploads_folder(crm) / f"upload-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    chosen = ImportOptions(entity, format=format_for(name), dry_run=dry_run, **options)
    with crm.unit_of_work(actor=actor, source="test") as uow:
        return create_job(uow, path=path, filename=name, options=chosen).id


def ran(crm: Any, actor: Any, *args: Any, **kwargs: Any) -> int:
    """A job for an uploaded file, run."""
    job_id = queued(crm, actor, *args, **kwargs)
    run_import_job(crm, job_id)
    return job_id


def job(crm: Any, job_id: int) -> ImportJob:
    with crm.session_factory() as session:
        found = session.get(ImportJob, job_id)
        assert found is not None
        return found


def uploads(crm: Any) -> list[Path]:
    """Every file under the uploads folder."""
    folder = uploads_folder(crm)
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def run_again(crm: Any, actor: Any, job_id: int, **kwargs: Any) -> int:
    with crm.unit_of_work(actor=actor, source="test") as uow:
        return rerun(uow, job_id, **kwargs).id


def count(crm: Any, model: Any) -> int:
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# -- the columns a job used ----------------------------------------------------------------------


def test_a_csv_job_records_the_columns_it_used_in_the_files_order(crm, clerk, tmp_path):
    job_id = ran(crm, clerk, "Notes,Town,Company,email\nx,Berlin,Acme,a@x.example\n",
                 columns={"Notes": "industry"})
    used = job(crm, job_id).columns_used
    assert list(used.items()) == [
        ("Notes", "industry"), ("Town", "city"), ("Company", "name"), ("email", "email")
    ]
    ignored = ran(crm, clerk, FIRMS, dry_run=False)
    assert job(crm, ignored).columns_used == {"Company": "name", "Town": "city", "Notes": ""}
    # A file of the user's (the CLI's) too.
    path = tmp_path / "firms.csv"
    path.write_text(FIRMS, encoding="utf-8")
    with crm.unit_of_work(actor=clerk, source="test") as uow:
        cli_id = create_job(uow, path=path, filename="firms.csv",
                            options=ImportOptions("customers", dry_run=True)).id
    run_import_job(crm, cli_id)
    assert job(crm, cli_id).columns_used == {"Company": "name", "Town": "city", "Notes": ""}


def test_a_vcard_job_records_no_columns_and_a_queued_job_none_yet(crm):
    admin = make_user(crm, "admin@reruns.example")
    card = ran(crm, admin, CARD, "phone.vcf", entity="contacts")
    assert job(crm, card).status == "succeeded" and job(crm, card).columns_used is None
    assert job(crm, queued(crm, admin)).columns_used is None


def test_a_job_whose_header_does_not_fit_records_no_columns(crm, clerk):
    failed = ran(crm, clerk, "Firm\nAcme\n")
    assert job(crm, failed).status == "failed" and job(crm, failed).columns_used is None


# -- the file of a dry run -------------------------------------------------------------------------


def test_a_dry_run_keeps_its_file_until_it_expires_then_the_prune_job_deletes_it(crm, clerk):
    before = utcnow()
    dry_id = ran(crm, clerk)
    dry = job(crm, dry_id)
    (path,) = uploads(crm)
    assert dry.path == str(path) and kept_file(dry) == path
    assert before + KEEP_DRY_RUN_FILE <= dry.file_expires_at <= utcnow() + KEEP_DRY_RUN_FILE
    assert dt.timedelta(hours=24) == KEEP_DRY_RUN_FILE
    assert prune_kept_files(crm) == []  # not expired yet
    assert uploads(crm) == [path]
    later = dry.file_expires_at + dt.timedelta(seconds=1)
    assert kept_file(dry, now=later) is None
    assert prune_kept_files(crm, now=later) == [dry_id]
    assert uploads(crm) == [] and not path.parent.exists()
    pruned = job(crm, dry_id)
    assert (pruned.path, pruned.file_expires_at, pruned.status) == (None, None, "succeeded")
    assert prune_kept_files(crm, now=later) == []


def test_the_hourly_core_job_prunes_expired_files(crm, clerk):
    task = crm.registry.jobs["crm_core.prune_import_files"]
    assert task.schedule == "40 * * * *"
    kept_id, expired_id = ran(crm, clerk), ran(crm, clerk)
    with crm.unit_of_work(source="test") as uow:
        uow.session.get(ImportJob, expired_id).file_expires_at = utcnow() - dt.timedelta(seconds=1)
    expired_path = Path(job(crm, expired_id).path)
    task.func(crm)
    assert not expired_path.exists() and job(crm, expired_id).path is None
    assert uploads(crm) == [Path(job(crm, kept_id).path)]


def test_real_runs_failed_dry_runs_and_the_users_own_files_keep_nothing(crm, clerk, tmp_path):
    real = ran(crm, clerk, dry_run=False)
    failed = ran(crm, clerk, "Firm\nAcme\n")
    assert uploads(crm) == []
    for job_id in (real, failed):
        assert job(crm, job_id).file_expires_at is None
    own = tmp_path / "firms.csv"
    own.write_text(FIRMS, encoding="utf-8")
    with crm.unit_of_work(actor=clerk, source="test") as uow:
        cli_id = create_job(uow, path=own, filename="firms.csv",
                            options=ImportOptions("customers", dry_run=True)).id
    run_import_job(crm, cli_id)
    assert own.exists() and job(crm, cli_id).file_expires_at is None  # not ours to keep
    with pytest.raises(RerunError, match="no longer kept"):
        run_again(crm, clerk, cli_id, dry_run=False)


# -- running again -------------------------------------------------------------------------------


def test_rerun_hands_the_file_over_to_a_new_job_with_the_columns_given(crm, clerk):
    dry_id = ran(crm, clerk, columns={"Notes": "industry"}, match_on="none", delimiter=",")
    (path,) = uploads(crm)
    again_id = run_again(crm, clerk, dry_id, dry_run=True, columns={"town": "region"})
    assert again_id != dry_id
    old, again = job(crm, dry_id), job(crm, again_id)
    assert (old.path, old.file_expires_at) == (None, None)  # no longer its file
    assert again.path == str(path) and kept_file(again) == path
    assert (again.status, again.dry_run, again.created_count) == ("succeeded", True, 2)
    assert again.created_by_id == clerk.id and again.filename == "firms.csv"
    assert again.options["columns"] == {"Notes": "industry", "town": "region"}
    assert (again.options["match_on"], again.options["delimiter"]) == ("none", ",")
    assert again.columns_used == {"Company": "name", "Town": "region", "Notes": "industry"}
    # Pruning later removes the file under the job that holds it, once.
    later = again.file_expires_at + dt.timedelta(seconds=1)
    assert prune_kept_files(crm, now=later) == [again_id]
    assert uploads(crm) == []


def test_rerun_for_real_imports_the_file_and_deletes_it(crm, clerk):
    dry_id = ran(crm, clerk)
    real_id = run_again(crm, clerk, dry_id, dry_run=False)
    real = job(crm, real_id)
    assert (real.status, real.dry_run, real.created_count) == ("succeeded", False, 2)
    assert real.file_expires_at is None and uploads(crm) == []
    assert count(crm, Customer) == 2
    for job_id, why in ((dry_id, "no longer kept"), (real_id, "not a dry run")):
        with pytest.raises(RerunError, match=why):
            run_again(crm, clerk, job_id, dry_run=True)
    assert count(crm, ImportJob) == 2


def test_only_the_jobs_creator_may_run_it_again_with_edit_permission(crm, clerk):
    dry_id = ran(crm, clerk)
    admin = make_user(crm, "admin@reruns.example")  # every permission, sees everything
    with pytest.raises(PermissionDenied, match="only the user who uploaded a file"):
        run_again(crm, admin, dry_id, dry_run=True)
    with pytest.raises(PermissionDenied, match=r"customer\.edit"):
        run_again(crm, ScopedActor(clerk, ["customer.view"]), dry_id, dry_run=False)
    with pytest.raises(PermissionDenied):
        run_again(crm, None, dry_id, dry_run=True)  # the system did not create it
    with pytest.raises(NotFoundError):
        run_again(crm, clerk, dry_id + 1000, dry_run=True)
    assert kept_file(job(crm, dry_id)) is not None and count(crm, ImportJob) == 1


def test_rerun_refuses_an_unfinished_failed_or_expired_job(crm, clerk):
    waiting = queued(crm, clerk)
    with pytest.raises(RerunError, match="has not finished"):
        run_again(crm, clerk, waiting, dry_run=True)
    failed = ran(crm, clerk, "Firm\nAcme\n")
    with pytest.raises(RerunError, match="it failed"):
        run_again(crm, clerk, failed, dry_run=True)
    dry_id = ran(crm, clerk)
    later = job(crm, dry_id).file_expires_at + dt.timedelta(seconds=1)
    with crm.unit_of_work(actor=clerk, source="test") as uow, pytest.raises(
        RerunError, match=r"its file expired .*upload the file again"
    ):
        rerun(uow, dry_id, dry_run=False, now=later)
    dry = job(crm, dry_id)
    Path(dry.path).unlink()  # deleted behind the job's back
    with pytest.raises(RerunError, match="no longer kept"):
        run_again(crm, clerk, dry_id, dry_run=False)
    assert count(crm, ImportJob) == 3


def test_rerun_refuses_a_mapping_the_file_does_not_fit_and_keeps_the_file(crm, clerk):
    dry_id = ran(crm, clerk)
    with pytest.raises(MappingError) as refused:
        run_again(crm, clerk, dry_id, dry_run=True, columns={"Company": "nmae"})
    assert "customer has no field 'nmae'" in str(refused.value)
    with pytest.raises(MappingError, match="No column fills name"):
        run_again(crm, clerk, dry_id, dry_run=True, columns={"Company": ""})
    assert kept_file(job(crm, dry_id)) is not None and count(crm, ImportJob) == 1
    carder = make_user(crm, "cards@reruns.example")
    cards = ran(crm, carder, CARD, "phone.vcf", entity="contacts")
    with pytest.raises(MappingError, match="A vCard file has no columns"):
        run_again(crm, carder, cards, dry_run=True, columns={"FN": "name"})
    assert kept_file(job(crm, cards)) is not None
