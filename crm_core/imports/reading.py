"""Reading import files: byte streams, encodings, delimiters and CSV rows with their lines.

:func:`open_csv` takes what a spreadsheet or another CRM exports and yields its rows
lazily, each with the line of the file it starts on:

* the **encoding** is an explicit ``encoding`` if given; else a byte order mark
  (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE, and the malformed "two-byte BOM before UTF-32
  code units" some tools write); else UTF-8 when the first 64 KiB are (mostly) UTF-8;
  else charset-normalizer's guess, cp1252 when it has none or a Western single-byte
  one.
* bytes that are not valid in that encoding never stop the reading: they are kept
  as lone surrogates (``surrogateescape``), and the row they are in carries
  :attr:`RawRow.bad_cells`, so the importer rejects that row and imports the others.
* the **delimiter** is an explicit one, or the Excel hint ``sep=;`` on the first
  line, or the one of ``, ; TAB |`` that splits the first lines into the most
  consistent number of columns (more than one).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from crm_core.errors import CRMError

#: How much of the file decides the encoding and the delimiter.
SAMPLE_BYTES = 64 * 1024
#: Delimiters tried when none is given.
DELIMITERS = (",", ";", "\t", "|")
#: Cells longer than this are refused by the csv module (its default is 128 KiB).
FIELD_SIZE_LIMIT = 16 * 1024 * 1024

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SURROGATE = re.compile("[\udc80-\udcff]")
_SURROGATE_RUN = re.compile("[\udc80-\udcff]+")
#: Guesses of charset-normalizer that are taken; any other guess (it names cp1006 or
#: cp1250 for short Western samples) gives cp1252, what spreadsheets on Windows write.
_TRUSTED_GUESSES = frozenset(
    {
        "shift_jis", "cp932", "euc_jp", "iso2022_jp", "gb2312", "gbk", "gb18030", "big5",
        "big5hkscs", "euc_kr", "cp949", "johab", "koi8_r", "koi8_u", "cp1251", "iso8859_5",
        "mac_cyrillic", "cp1253", "iso8859_7", "cp1254", "iso8859_9", "cp1255", "iso8859_8",
        "cp1256", "iso8859_6", "cp1257", "cp1258", "tis_620", "cp874",
    }
)

csv.field_size_limit(FIELD_SIZE_LIMIT)


class ReadError(CRMError):
    """The file cannot be read at all (not a row: the whole file)."""


@dataclass(frozen=True, slots=True)
class RawRow:
    """One row of the file: the line it starts on and its cells as text."""

    line: int
    cells: list[str]
    bad_cells: tuple[int, ...] = ()
    """Positions of cells holding bytes that are not valid in the file's encoding."""


@dataclass(frozen=True)
class Encoding:
    """How the file's bytes become text: the codec and how many BOM bytes to skip."""

    name: str
    skip: int = 0
    detected_by: str = "default"
    """``option``, ``bom``, ``utf-8``, ``charset-normalizer`` or ``fallback``."""


def detect_encoding(sample: bytes, explicit: str | None = None) -> Encoding:
    """The encoding of a file starting with ``sample`` (see the module's docstring)."""
    if explicit:
        try:
            name = codecs.lookup(explicit).name
        except LookupError as exc:
            raise ReadError(f"unknown encoding {explicit!r}") from exc
        skip = 0
        for bom, bom_name in _BOMS:
            if sample.startswith(bom) and codecs.lookup(bom_name).name == name:
                skip = len(bom)
                break
        if name == "utf-8" and sample.startswith(codecs.BOM_UTF8):
            skip = 3
        return Encoding(name, skip, "option")
    for bom, name in _BOMS:
        if sample.startswith(bom):
            utf32 = _looks_like_utf32(sample[2:]) if name.startswith("utf-16") else None
            if utf32 is not None:
                # A two-byte BOM followed by UTF-32 code units (seen in real exports).
                return Encoding(utf32, 2, "bom")
            return Encoding(name, len(bom), "bom")
    decoded = codecs.getincrementaldecoder("utf-8")("surrogateescape").decode(sample, final=False)
    invalid = len(_SURROGATE_RUN.findall(decoded))
    if invalid == 0:
        return Encoding("utf-8", 0, "utf-8")
    valid_non_ascii = sum(1 for char in decoded if char > "\x7f" and not _SURROGATE.match(char))
    if valid_non_ascii and invalid <= 2 * valid_non_ascii:
        # UTF-8 text with a few broken bytes: read as UTF-8, reject the broken rows.
        return Encoding("utf-8", 0, "utf-8")
    return Encoding(_guess_legacy(sample), 0, "charset-normalizer")


def _looks_like_utf32(rest: bytes) -> str | None:
    """``utf-32-le``/``-be`` if ``rest`` is made of 4-byte units of BMP text, else ``None``."""
    units = rest[: len(rest) - len(rest) % 4][:4096]
    if len(units) < 8:
        return None
    quads = [units[i : i + 4] for i in range(0, len(units), 4)]
    if all(quad[2:] == b"\0\0" for quad in quads):
        return "utf-32-le"
    if all(quad[:2] == b"\0\0" for quad in quads):
        return "utf-32-be"
    return None


def _guess_legacy(sample: bytes) -> str:
    """The encoding of non-UTF-8 ``sample``: an East Asian, Cyrillic... guess, else cp1252."""
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(sample).best()
    except Exception:  # a detector failing must not fail the import
        best = None
    guess = (best.encoding or "") if best is not None else ""
    if guess in _TRUSTED_GUESSES:
        return codecs.lookup(guess).name
    return "cp1252"


class _Counting(io.RawIOBase):
    """A raw stream over ``sample`` then the rest of ``stream``, counting the bytes read."""

    def __init__(self, stream: BinaryIO, sample: bytes, skip: int) -> None:
        self._stream = stream
        self._pending = memoryview(sample)[skip:]
        self.bytes_read = skip

    def readable(self) -> bool:
        """Always."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the sample first, then from the stream."""
        if self._pending:
            size = min(len(buffer), len(self._pending))
            buffer[:size] = self._pending[:size]
            self._pending = self._pending[size:]
        else:
            data = self._stream.read(len(buffer))
            size = len(data)
            buffer[:size] = data
        self.bytes_read += size
        return size


class CsvSource:
    """A CSV file being read: its encoding, delimiter, header and rows (read once, lazily)."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        encoding: str | None = None,
        delimiter: str | None = None,
    ) -> None:
        sample = stream.read(SAMPLE_BYTES)
        if not isinstance(sample, bytes):
            raise ReadError("the file must be opened in binary mode")
        self.encoding = detect_encoding(sample, encoding)
        self._raw = _Counting(stream, sample, self.encoding.skip)
        buffered = io.BufferedReader(self._raw, buffer_size=256 * 1024)
        self._text = io.TextIOWrapper(
            buffered, encoding=self.encoding.name, errors="surrogateescape", newline=""
        )
        text_sample = sample[self.encoding.skip :].decode(self.encoding.name, "surrogateescape")
        first_line_end = _line_end(text_sample)
        first_line = text_sample[:first_line_end]
        self._skip_lines = 0
        hinted = re.fullmatch(r"\s*sep=(.)\s*", first_line.rstrip("\r\n"))
        if delimiter is None and hinted:
            delimiter = hinted.group(1)
            self._skip_lines = 1
            text_sample = text_sample[first_line_end:]
        if delimiter is not None and len(delimiter) != 1:
            raise ReadError(f"the delimiter must be one character, not {delimiter!r}")
        self.delimiter = delimiter or sniff_delimiter(text_sample)
        self._reader = csv.reader(self._text, delimiter=self.delimiter, strict=False)
        for _ in range(self._skip_lines):
            self._text.readline()
        self.header_line = self._skip_lines + 1
        header = self._next_nonblank()
        if header is None:
            raise ReadError("the file is empty: no header row")
        self.header_line = header.line
        self.header = [_clean_header(cell) for cell in header.cells]
        if header.bad_cells:
            self.header = [_visible(cell) for cell in self.header]

    @property
    def bytes_read(self) -> int:
        """Bytes of the file read so far (ahead of the rows yielded by up to ~256 KiB)."""
        return self._raw.bytes_read

    def _next_nonblank(self) -> RawRow | None:
        for row in self._rows():
            return row
        return None

    def _rows(self) -> Iterator[RawRow]:
        reader = self._reader
        consumed = self._skip_lines + reader.line_num
        try:
            for cells in reader:
                line = consumed + 1
                consumed = self._skip_lines + reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                bad: tuple[int, ...] = ()
                joined = "".join(cells)
                if not joined.isascii() and _SURROGATE.search(joined):
                    bad = tuple(i for i, cell in enumerate(cells) if _SURROGATE.search(cell))
                yield RawRow(line, cells, bad)
        except csv.Error as exc:
            raise ReadError(f"line {consumed + 1}: {exc}") from exc

    def rows(self) -> Iterator[RawRow]:
        """The data rows after the header, blank lines left out."""
        return self._rows()

    def close(self) -> None:
        """Release the text wrapper (the underlying stream stays the caller's)."""
        self._text.detach()


def sniff_delimiter(sample: str) -> str:
    """The delimiter of ``DELIMITERS`` that splits the sample's lines most consistently."""
    lines = sample.splitlines()[:50]
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line may be cut off
    best, best_score = ",", (0.0, 0)
    for candidate in DELIMITERS:
        try:
            rows = [row for row in csv.reader(lines, delimiter=candidate) if row]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        consistent = sum(len(row) == width for row in rows) / len(rows)
        score = (consistent, width)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _line_end(text: str) -> int:
    match = re.search(r"\r\n|\n|\r", text)
    return match.end() if match else len(text)


def _clean_header(cell: str) -> str:
    """A header cell without surrounding spaces or a stray BOM."""
    return cell.replace("\ufeff", "").strip()


def visible_text(value: str) -> str:
    """``value`` with undecodable bytes shown as U+FFFD (for reports and messages)."""
    return _visible(value)


def _visible(value: str) -> str:
    return _SURROGATE.sub("\ufffd", value)
