"""Running an export: check who asks for what, then stream the file in chunks.

:func:`prepare_export` finds the export, checks the format and the actor's permission
(before a single byte is written, so the API can still answer 403 or 404), and returns
an :class:`Export` whose :meth:`~Export.stream` yields the file as text chunks, one per
batch of rows; :meth:`~Export.write` writes them to a binary file.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import Connection

from crm_core.authz import require
from crm_core.errors import CRMError
from crm_core.exports.formats import FORMATS, UTF8_BOM, Format
from crm_core.exports.sources import Run, Source, export_sources
from crm_core.exports.stream import BATCH_SIZE, read_connection
from crm_core.exports.values import dumps

if TYPE_CHECKING:
    from crm_core.runtime import CRM


class ExportError(CRMError):
    """An export cannot be made as asked; ``field`` says what is wrong (``entity``, ``format``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Export:
    """One export, checked and ready to stream."""

    crm: CRM
    source: Source
    format: Format
    actor: Any = None
    include_archived: bool = False
    excel: bool = False
    batch_size: int = BATCH_SIZE
    rows: int = 0
    """How many records were written so far."""

    @property
    def filename(self) -> str:
        """A file name for the download: ``contacts.csv``."""
        return f"{self.source.name}.{self.format.extension}"

    @property
    def content_type(self) -> str:
        """The media type with its charset: ``text/csv; charset=utf-8``."""
        return f"{self.format.media_type}; charset=utf-8"

    def stream(self) -> Iterator[str]:
        """The file in chunks of text, read in one read transaction of its own."""
        with read_connection(self.crm) as connection:
            yield from self.chunks(connection)

    def chunks(
        self, connection: Connection, *, ids: tuple[int, int] | None = None, header: bool = True
    ) -> Iterator[str]:
        """The file in chunks of text (one per batch of rows), read through ``connection``.

        ``ids`` keeps the records whose id lies in that closed range; ``header=False``
        leaves out what starts a CSV file (header row, byte order mark): both serve a
        parallel export's ranges (:mod:`crm_core.exports.parallel`).
        """
        run = Run(self.crm, connection, self.actor, self.include_archived, self.batch_size, ids)
        self.rows = 0
        if self.format.name == "csv":
            yield from self._csv(run, header)
        elif self.format.name == "jsonl":
            for records in self.source.json_records(run):
                self.rows += len(records)
                yield "".join([dumps(record) + "\n" for record in records])
        else:
            for cards in self.source.vcards(run):
                self.rows += cards.count("BEGIN:VCARD\r\n")
                yield cards

    def _csv(self, run: Run, header: bool) -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)  # RFC 4180: "," and CRLF, quotes only where needed
        batches = self.source.csv_rows(run)
        first = next(batches)
        if header:
            if self.excel:
                buffer.write(UTF8_BOM)
            writer.writerows(first)
        for rows in batches:
            writer.writerows(rows)
            self.rows += len(rows)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()  # the header of an export without rows

    def write(self, out: BinaryIO) -> int:
        """Write the file to ``out`` (UTF-8); return how many records it holds."""
        for chunk in self.stream():
            out.write(chunk.encode("utf-8"))
        return self.rows


def export_to_path(export: Export, path: str | os.PathLike[str]) -> int:
    """Write ``export`` to the file ``path`` (see :func:`atomic_file`); return its records."""
    with atomic_file(path) as out:
        return export.write(out)


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` complete, or not at all.

    It is written beside ``path`` under a temporary name and renamed over ``path`` when
    the block ends without an error; after an error the temporary file is removed.
    """
    target = Path(path)
    handle, temporary = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def available_exports(crm: CRM, actor: Any = None) -> list[Source]:
    """The exports ``actor`` may make, by name."""
    sources = export_sources(crm)
    granted = None if actor is None else actor.permissions
    return [
        sources[name]
        for name in sorted(sources)
        if granted is None or sources[name].permission in granted
    ]


def prepare_export(
    crm: CRM,
    name: str,
    format: str | None = None,
    *,
    actor: Any = None,
    include_archived: bool = False,
    excel: bool = False,
    batch_size: int = BATCH_SIZE,
) -> Export:
    """The export ``name`` in ``format`` (default CSV) for ``actor`` (``None``: the system).

    Raises :class:`ExportError` for an unknown export or a format it does not offer,
    and :class:`~crm_core.errors.PermissionDenied` when ``actor`` may not see its records.
    """
    sources = export_sources(crm)
    source = sources.get(name)
    if source is None:
        raise ExportError(
            "entity", f"there is no export {name!r}; exports: {', '.join(sorted(sources))}"
        )
    format = format or "csv"
    if format not in FORMATS or format not in source.formats:
        raise ExportError(
            "format",
            f"{source.name} can be exported as {', '.join(source.formats)}, not {format!r}",
        )
    if excel and format != "csv":
        raise ExportError("excel", "the Excel byte order mark is for CSV files only")
    require(actor, source.permission)
    return Export(crm, source, FORMATS[format], actor, include_archived, excel, batch_size)
