"""The records the rows of a batch name (customers, owners, pipelines, stages, lost
reasons), read in one query per kind, and each row's input for the deals service."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.authz import visible
from crm_core.models import Customer, User
from crm_sales.models import LostReason, Pipeline
from crm_sales.parts.deals_io.reading import CUSTOMER_TARGETS, FIELDS, FileRow

_INTEGER = re.compile(r"[+-]?\d+")
_INTEGERS = frozenset({"customer_id", "pipeline_id", "stage_id", "owner_id", "probability",
                       "lost_reason_id"})


class References:
    """The records a batch's rows name, read in one query per kind, and each row's input."""

    def __init__(self, session: Session, actor: Any, rows: Sequence[FileRow]) -> None:
        wanted: dict[str, set[str]] = {}
        for row in rows:
            values = row.values
            used = [] if "customer_id" in values else [
                next((t for t in CUSTOMER_TARGETS[1:] if t in values), "")
            ]
            if "owner_id" not in values:
                used.append("owner.email")
            for target in used:
                if target in values:
                    value = values[target]
                    wanted.setdefault(target, set()).add(
                        value.lower() if target.endswith(".email") else value
                    )
        self.customers: dict[str, dict[str, int | None]] = {}
        for target, values in wanted.items():
            if target.startswith("customer."):
                self.customers[target] = _customers(session, actor, target, values)
        self.owners: dict[str, int | None] = {}
        if "owner.email" in wanted:
            for email, ident, active in session.execute(
                select(User.email, User.id, User.active).where(
                    User.email.in_(sorted(wanted["owner.email"]))
                )
            ):
                self.owners[email] = ident if active else None
        needs_pipelines = any(
            "pipeline" in row.values or "stage" in row.values for row in rows
        )
        self.pipelines: list[Pipeline] = []
        if needs_pipelines:
            self.pipelines = list(session.scalars(
                select(Pipeline).order_by(Pipeline.is_default.desc(), Pipeline.position,
                                          Pipeline.id)
            ))
        self.lost_reasons: dict[str, int] = {}
        if any("lost_reason" in row.values for row in rows):
            self.lost_reasons = {
                name.lower(): ident
                for name, ident in session.execute(select(LostReason.name, LostReason.id))
            }

    def data(self, row: FileRow) -> tuple[dict[str, Any], list[tuple[str, str]], dict[str, str]]:
        """The service input of ``row``, problems as ``(target, reason)``, and which target
        filled each resolved field (to name the column of a refused field)."""
        values = row.values
        data: dict[str, Any] = {}
        for target in FIELDS:
            if target in values:
                text = values[target]
                data[target] = int(text) if target in _INTEGERS and _INTEGER.fullmatch(
                    text) else text
        problems: list[tuple[str, str]] = []
        filled: dict[str, str] = {}
        if "customer_id" not in data:
            for target in CUSTOMER_TARGETS[1:]:
                if target in values:
                    filled["customer_id"] = target
                    ident, reason = self._customer(target, values[target])
                    if reason:
                        problems.append((target, reason))
                    else:
                        data["customer_id"] = ident
                    break
        if "owner_id" not in data and "owner.email" in values:
            filled["owner_id"] = "owner.email"
            owner = self.owners.get(values["owner.email"].lower())
            if owner is None:
                problems.append(("owner.email", f"No active user with the email "
                                                f"{values['owner.email']!r}."))
            else:
                data["owner_id"] = owner
        if "lost_reason_id" not in data and "lost_reason" in values:
            filled["lost_reason_id"] = "lost_reason"
            reason_id = self.lost_reasons.get(values["lost_reason"].lower())
            if reason_id is None:
                problems.append(("lost_reason", f"No lost reason named "
                                                f"{values['lost_reason']!r}."))
            else:
                data["lost_reason_id"] = reason_id
        self._pipeline_and_stage(values, data, problems, filled)
        return data, problems, filled

    def _customer(self, target: str, value: str) -> tuple[int | None, str]:
        key = value.lower() if target == "customer.email" else value
        ident = self.customers.get(target, {}).get(key, 0)
        what = target.partition(".")[2].replace("_", " ")
        if ident is None:
            return None, f"Several customers have the {what} {value!r}."
        if not ident:
            return None, f"No customer with the {what} {value!r}."
        return ident, ""

    def _pipeline_and_stage(
        self,
        values: Mapping[str, str],
        data: dict[str, Any],
        problems: list[tuple[str, str]],
        filled: dict[str, str],
    ) -> None:
        """Fill ``pipeline_id`` and ``stage_id`` from the names (ids given win)."""
        pipeline: Pipeline | None = None
        if "pipeline_id" not in data and "pipeline" in values:
            filled["pipeline_id"] = "pipeline"
            pipeline = self._named(self.pipelines, values["pipeline"])
            if pipeline is None:
                problems.append(("pipeline", f"No pipeline named {values['pipeline']!r}."))
                return
            data["pipeline_id"] = pipeline.id
        if "stage_id" in data or "stage" not in values:
            return
        filled["stage_id"] = "stage"
        if pipeline is None:
            pipeline_id = data.get("pipeline_id")
            if pipeline_id is None:
                pipeline = self.pipelines[0] if self.pipelines else None
            else:
                pipeline = next((p for p in self.pipelines if p.id == pipeline_id), None)
        if pipeline is None:
            return  # the service names the missing or unknown pipeline
        stage = self._named(pipeline.stages, values["stage"])
        if stage is None:
            problems.append(
                ("stage", f"The pipeline {pipeline.name!r} has no stage {values['stage']!r}.")
            )
        else:
            data["stage_id"] = stage.id

    @staticmethod
    def _named(records: Sequence[Any], name: str) -> Any:
        """The record called ``name`` (exactly, else ignoring case), or ``None``."""
        exact = next((record for record in records if record.name == name.strip()), None)
        if exact is not None:
            return exact
        folded = name.strip().casefold()
        return next((record for record in records if record.name.casefold() == folded), None)


def _customers(session: Session, actor: Any, target: str, values: set[str]) -> dict[str, Any]:
    """Key -> id of the visible, unmerged customer it names (``None``: several, by name)."""
    column = {"customer.external_id": Customer.external_id, "customer.email": Customer.email,
              "customer.name": Customer.name}[target]
    statement = (
        select(column, func.min(Customer.id), func.count(Customer.id))
        .where(column.in_(sorted(values)), Customer.merged_into_id.is_(None),
               visible(actor, "customer"))
        .group_by(column)
    )
    return {
        key: (ident if count == 1 or target != "customer.name" else None)
        for key, ident, count in session.execute(statement)
    }
