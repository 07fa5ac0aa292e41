"""The file formats of exports: names, media types and file extensions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class Format:
    """One export format: ``csv``, ``jsonl`` or ``vcf``."""

    name: str
    media_type: str
    extension: str
    description: str


FORMATS: dict[str, Format] = {
    "csv": Format(
        "csv", "text/csv", "csv", "RFC 4180 CSV, UTF-8, a header row of column names"
    ),
    "jsonl": Format(
        "jsonl", "application/jsonl", "jsonl", "JSON Lines: one JSON object per record"
    ),
    "vcf": Format("vcf", "text/vcard", "vcf", "vCard 3.0, one card per contact"),
}

#: File name extensions and the format they stand for (``crm export -o FILE``).
EXTENSIONS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".vcf": "vcf",
    ".vcard": "vcf",
}

#: What Excel needs to read a CSV file as UTF-8: the byte order mark.
UTF8_BOM = "\ufeff"


def format_for_path(path: str | PurePath) -> str | None:
    """The format a file name's extension stands for (``contacts.vcf`` -> ``vcf``), if any."""
    return EXTENSIONS.get(PurePath(path).suffix.lower())
