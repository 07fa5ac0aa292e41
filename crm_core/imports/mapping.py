"""From a file's header to the fields of an entity, and from a row's cells to service input.

A **target** is what a column fills:

* a field of the entity's schema (``name``, ``city``, ``job_title``, a plugin's field);
* contacts only: ``email`` / ``email.<label>`` (one address, label ``work`` by default),
  ``emails`` (several, separated by ``,`` or ``;``, or a JSON list such as Atomic CRM's
  ``email_jsonb``), the same for ``phone`` / ``phone.<label>`` / ``phones``, and
  ``name`` (a full name, split into first and last name at the last space);
* ``attributes.<name>``: a custom attribute declared for the entity;
* a reference to another record by one of its keys: ``customer.external_id``,
  ``customer.email`` or ``customer.name`` (contacts and interactions) and
  ``contact.external_id`` or ``contact.email`` (interactions); the importer looks
  them up in one query per batch;
* ``""``: the column is ignored.

Without an explicit mapping, each header is matched to a target by its exact name,
then ignoring case, spaces, underscores, hyphens and dots, then through the aliases of
common exports (Salesforce, Odoo, Atomic CRM, Outlook/Google-style headers). Columns
that match nothing are ignored (and listed). A mapping that names a target which does
not exist, or leaves a required field without a column, is a :class:`MappingError`
before anything is imported.

Empty cells are left out of a row: on create the field gets its default, on update it
keeps its stored value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from crm_core.errors import CRMError
from crm_core.extensions import Importer
from crm_core.imports.reading import RawRow, visible_text

if TYPE_CHECKING:
    from crm_core.runtime import CRM

#: Plural (as the CLI and the API name them) and singular -> entity.
ENTITIES = {
    "customers": "customer",
    "customer": "customer",
    "contacts": "contact",
    "contact": "contact",
    "interactions": "interaction",
    "interaction": "interaction",
}

#: Fields the entity's schema loads that a file must provide (one of each tuple).
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "customer": (("name",),),
    "contact": (("first_name", "last_name", "name"),),
    "interaction": (
        ("customer_id", "customer.external_id", "customer.email", "customer.name"),
        ("channel",),
        ("occurred_at",),
    ),
}

#: Reference targets: target -> (field it fills, entity referred to, key of that entity).
REFERENCES: dict[str, dict[str, tuple[str, str, str]]] = {
    "customer": {},
    "contact": {
        "customer.external_id": ("customer_id", "customer", "external_id"),
        "customer.email": ("customer_id", "customer", "email"),
        "customer.name": ("customer_id", "customer", "name"),
    },
    "interaction": {
        "customer.external_id": ("customer_id", "customer", "external_id"),
        "customer.email": ("customer_id", "customer", "email"),
        "customer.name": ("customer_id", "customer", "name"),
        "contact.external_id": ("contact_id", "contact", "external_id"),
        "contact.email": ("contact_id", "contact", "email"),
    },
}

_CUSTOMER_ALIASES = {
    "name": ["account name", "company", "company name", "organisation", "organization",
             "business name"],
    "street": ["billing street", "street", "address", "street address", "address line 1",
               "address 1", "mailing street"],
    "city": ["billing city", "town", "mailing city"],
    "region": ["billing state", "state", "province", "state/province", "county",
               "mailing state"],
    "postal_code": ["billing postal code", "zip", "zip code", "postcode", "post code",
                    "postal code", "mailing postal code"],
    "country": ["billing country", "country code", "mailing country"],
    "phone": ["telephone", "phone number", "tel", "business phone", "main phone"],
    "email": ["e-mail", "email address", "e-mail address", "mail"],
    "website": ["web site", "url", "homepage", "web"],
    "external_id": ["id", "external id", "account id", "record id", "customer id"],
    "kind": ["company type", "customer type", "kind"],
    "tags": ["labels", "categories", "category"],
    "lifecycle_stage": ["stage", "lifecycle"],
}
_CONTACT_ALIASES = {
    "first_name": ["first name", "firstname", "given name", "forename", "first"],
    "last_name": ["last name", "lastname", "surname", "family name", "last"],
    "name": ["full name", "contact name", "display name"],
    "job_title": ["title", "job title", "position", "function", "role"],
    "external_id": ["id", "external id", "contact id", "record id"],
    "email": ["e-mail", "email address", "e-mail address", "mail", "primary email"],
    "email.work": ["email work", "work email", "business email", "e-mail 1 - value"],
    "email.home": ["email home", "home email", "personal email", "private email",
                   "e-mail 2 - value"],
    "email.other": ["email other", "other email", "e-mail 3 - value"],
    "emails": ["email jsonb", "email addresses"],
    "phone": ["telephone", "phone number", "tel"],
    "phone.work": ["phone work", "work phone", "business phone", "office phone"],
    "phone.home": ["phone home", "home phone", "private phone"],
    "phone.mobile": ["mobile", "mobile phone", "cell", "cell phone", "phone mobile"],
    "phone.other": ["phone other", "other phone"],
    "phones": ["phone jsonb", "phone numbers"],
    "customer.name": ["company", "company name", "account name", "organisation",
                      "organization", "related company", "employer"],
    "customer.external_id": ["customer external id", "company external id"],
    "consent_email": ["has newsletter", "newsletter", "email consent", "email opt in"],
    "consent_phone": ["phone consent"],
}
_INTERACTION_ALIASES = {
    "customer.external_id": ["customer external id", "account external id", "account id"],
    "customer.email": ["customer email", "account email"],
    "customer.name": ["customer name", "customer", "company", "account name", "account"],
    "contact.external_id": ["contact external id", "contact id"],
    "contact.email": ["contact email", "email"],
    "occurred_at": ["date", "occurred", "time", "timestamp", "when", "activity date",
                    "created date", "date time"],
    "subject": ["title", "summary"],
    "body": ["notes", "note", "description", "text", "details", "content", "comments"],
    "external_ref": ["id", "external id", "external ref", "reference", "ref"],
    "channel": ["type", "activity type", "medium"],
}
ALIASES = {
    "customer": _CUSTOMER_ALIASES,
    "contact": _CONTACT_ALIASES,
    "interaction": _INTERACTION_ALIASES,
}

_CHILD_LISTS = {"emails": ("email", "email"), "phones": ("phone", "number")}
_SPLIT = re.compile(r"[;,\n]+")
_NORMALISE = re.compile(r"[\s_\-.:/()]+")


class MappingError(CRMError):
    """The mapping cannot be used: ``messages`` maps each column or target to what is wrong."""

    def __init__(self, messages: Mapping[str, list[str]]) -> None:
        self.messages = {key: list(value) for key, value in messages.items()}
        super().__init__(
            "; ".join(f"{key}: {' '.join(value)}" for key, value in self.messages.items())
        )


#: What core imports, as the CLI and the API name it (each needs ``<singular>.edit``).
CORE_IMPORTS = ("customers", "contacts", "interactions")


def plugin_importers(crm: CRM | None) -> list[Importer]:
    """The plugins' importers core runs (those with ``run``), by name; an importer named
    like one of core's entities is not among them (core's names win)."""
    if crm is None:
        return []
    return [
        importer for name, importer in sorted(crm.registry.importers.items())
        if importer.run is not None and name.strip().lower() not in ENTITIES
    ]


def plugin_importer(crm: CRM | None, name: str) -> Importer | None:
    """The importer of :func:`plugin_importers` called ``name`` (any case), if any."""
    wanted = name.strip().lower()
    return next((i for i in plugin_importers(crm) if i.name.lower() == wanted), None)


def entity_name(value: str, crm: CRM | None = None) -> str:
    """``customer``, ``contact`` or ``interaction`` for a singular or plural name; with
    ``crm``, also the name of a plugin's importer core runs (:func:`plugin_importer`)."""
    found = ENTITIES.get(value.strip().lower())
    if found is not None:
        return found
    importer = plugin_importer(crm, value)
    if importer is not None:
        return importer.name
    names = [*CORE_IMPORTS, *(importer.name for importer in plugin_importers(crm))]
    raise MappingError(
        {"entity": [f"Unknown entity {value!r}: use {', '.join(names[:-1])} or {names[-1]}."]}
    )


def import_permission(crm: CRM | None, entity: str) -> str:
    """The permission importing ``entity`` needs: a plugin importer's ``permission``, else
    ``<entity>.edit`` (``entity`` as :func:`entity_name` returns it)."""
    importer = plugin_importer(crm, entity)
    return importer.permission if importer is not None else f"{entity}.edit"


def import_permissions(crm: CRM | None) -> tuple[str, ...]:
    """Every permission that lets a user import something: core's and the importers'."""
    names = [f"{ENTITIES[plural]}.edit" for plural in CORE_IMPORTS]
    names += [i.permission for i in plugin_importers(crm) if i.permission not in names]
    return tuple(dict.fromkeys(names))


def normalise(header: str) -> str:
    """A header reduced for matching: lower case, no spaces, underscores, dots or hyphens."""
    return _NORMALISE.sub("", header.lower())


@dataclass(frozen=True)
class Target:
    """What one column fills."""

    name: str
    """As written in a mapping (``email.home``, ``attributes.tier``...)."""
    kind: str
    """``field``, ``item`` (one email/phone), ``items`` (several), ``name`` (a full name),
    ``attribute`` or ``reference``."""
    field: str
    """The schema field it fills (``emails`` for ``email.home``, ``customer_id``...)."""
    label: str = "work"
    key: str = ""
    """For a reference: the entity referred to and its key, ``customer.external_id``."""
    convert: Callable[[str], Any] | None = None
    lenient: bool = False
    """For a reference: leave the field empty when no record matches instead of rejecting
    the row (contacts' company columns matched automatically)."""


def available_targets(crm: CRM, entity: str) -> dict[str, Target]:
    """Every target a column of an ``entity`` file may name (labelled items excepted)."""
    schema = crm.loader(entity)
    targets: dict[str, Target] = {}
    for name in schema.load_fields:
        if name in ("attributes", *(_CHILD_LISTS if entity == "contact" else ())):
            continue
        targets[name] = Target(name, "field", name, convert=_CONVERTERS.get((entity, name)))
    if entity == "contact":
        for list_name, (single, _value_key) in _CHILD_LISTS.items():
            targets[single] = Target(single, "item", list_name)
            targets[list_name] = Target(list_name, "items", list_name)
        targets["name"] = Target("name", "name", "name")
    for attribute in crm.registry.custom_attributes.values():
        if attribute.entity == entity:
            name = f"attributes.{attribute.name}"
            targets[name] = Target(name, "attribute", attribute.name)
    for name, (field_name, other, key) in REFERENCES[entity].items():
        targets[name] = Target(name, "reference", field_name, key=f"{other}.{key}")
    return targets


def parse_target(crm: CRM, entity: str, name: str, targets: Mapping[str, Target]) -> Target:
    """The target ``name`` names; :class:`MappingError` if ``entity`` has no such target."""
    name = name.strip()
    if name in targets:
        return targets[name]
    if entity == "contact":
        single, _sep, label = name.partition(".")
        for list_name, (item_name, _value_key) in _CHILD_LISTS.items():
            if single == item_name and label.strip():
                return Target(name, "item", list_name, label=label.strip()[:40])
    known = ", ".join(sorted(targets))
    if name.startswith("attributes."):
        raise MappingError(
            {name: [f"{entity} has no custom attribute {name.split('.', 1)[1]!r}."]}
        )
    raise MappingError({name: [f"{entity} has no field {name!r}; known: {known}."]})


@dataclass
class ColumnMapping:
    """Which column of the file fills which target, and which columns are ignored."""

    entity: str
    header: list[str]
    targets: list[Target | None]
    """One per column of ``header``; ``None`` for an ignored column."""
    explicit: dict[str, str] = field(default_factory=dict)

    @property
    def ignored(self) -> list[str]:
        """Headers of the columns no target uses."""
        return [h for h, t in zip(self.header, self.targets, strict=True) if t is None]

    def as_dict(self) -> dict[str, str]:
        """Header -> target name (``""`` for an ignored column): a mapping to save."""
        return {
            header: (target.name if target is not None else "")
            for header, target in zip(self.header, self.targets, strict=True)
        }

    def column_of(self, field_name: str) -> str:
        """The (first) column filling ``field_name``; ``""`` if none does."""
        for header, target in zip(self.header, self.targets, strict=True):
            if target is not None and target.field == field_name and target.kind != "attribute":
                return header
        return ""

    def attribute_column(self, name: str) -> str:
        """The column filling custom attribute ``name``; ``""`` if none does."""
        for header, target in zip(self.header, self.targets, strict=True):
            if target is not None and target.kind == "attribute" and target.field == name:
                return header
        return ""


def resolve_mapping(
    crm: CRM,
    entity: str,
    header: Sequence[str],
    explicit: Mapping[str, str] | None = None,
) -> ColumnMapping:
    """Map each column of ``header`` to a target: ``explicit`` first, then automatically.

    ``explicit`` maps headers to target names (``""`` ignores a column). A header it
    names that the file does not have, a target that does not exist, or a required
    field no column fills raises :class:`MappingError`.
    """
    targets = available_targets(crm, entity)
    errors: dict[str, list[str]] = {}
    explicit = dict(explicit or {})
    by_header: dict[str, Target | None] = {}
    headers = list(header)
    for column, name in explicit.items():
        if column not in headers:
            matches = [h for h in headers if normalise(h) == normalise(column)]
            if len(matches) != 1:
                errors.setdefault(column, []).append(
                    f"The file has no column {column!r}; its columns: {', '.join(headers)}."
                )
                continue
            column = matches[0]
        if not name or not str(name).strip():
            by_header[column] = None
            continue
        try:
            by_header[column] = parse_target(crm, entity, str(name), targets)
        except MappingError as exc:
            for key, messages in exc.messages.items():
                errors.setdefault(f"{column} -> {key}", []).extend(messages)
    automatic = _automatic_index(entity, targets)
    chosen: list[Target | None] = []
    used: set[str] = {t.name for t in by_header.values() if t is not None}
    for column in headers:
        if column in by_header:
            chosen.append(by_header[column])
            continue
        target = targets.get(column) or automatic.get(normalise(column))
        if target is not None and target.kind == "reference" and entity == "contact":
            target = replace(target, lenient=True)
        single = target is not None and target.kind in ("field", "name", "reference", "attribute")
        if single and target is not None and (
            target.name in used or (target.kind == "reference" and _fills(chosen, target))
        ):
            target = None
        if target is not None:
            used.add(target.name)
        chosen.append(target)
    for alternatives in REQUIRED[entity]:
        if not any(t is not None and alternatives_match(t, alternatives) for t in chosen):
            wanted = " or ".join(alternatives)
            errors.setdefault(alternatives[0], []).append(
                f"No column fills {wanted}: map one (e.g. --map \"Header={alternatives[0]}\")."
            )
    if errors:
        raise MappingError(errors)
    return ColumnMapping(entity, headers, chosen, {k: str(v) for k, v in explicit.items()})


def alternatives_match(target: Target, alternatives: Iterable[str]) -> bool:
    """Whether ``target`` fills one of the required ``alternatives``."""
    return target.name in alternatives or target.field in alternatives


def _fills(chosen: Sequence[Target | None], target: Target) -> bool:
    return any(t is not None and t.field == target.field for t in chosen)


def _automatic_index(entity: str, targets: Mapping[str, Target]) -> dict[str, Target]:
    """Normalised header -> target: the targets' own names, then the aliases."""
    index: dict[str, Target] = {}
    for name, target in targets.items():
        if target.kind == "field" and name.endswith("_id") and name != "external_id":
            continue  # ids of this CRM (owner_id...) only by their exact name
        index.setdefault(normalise(name), target)
    for name, aliases in ALIASES[entity].items():
        target = targets.get(name)
        if target is None and "." in name and entity == "contact":
            single, _sep, label = name.partition(".")
            if single in ("email", "phone"):
                target = Target(name, "item", f"{single}s", label=label)
        if target is None:
            continue
        for alias in aliases:
            index.setdefault(normalise(alias), target)
    return index


# -- rows ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Reference:
    """A value of a row naming another record, to be looked up: ``customer.external_id``."""

    field: str
    key: str
    value: str
    column: str
    lenient: bool = False
    """Leave the field empty when nothing matches (vCard ``ORG``), instead of rejecting."""


@dataclass(slots=True)
class MappedRow:
    """A row turned into service input, with where each value came from."""

    line: int
    data: dict[str, Any]
    values: Mapping[str, str]
    """Column -> raw text, for the report."""
    item_columns: dict[str, list[str]] | None = None
    """For ``emails``/``phones``: the column each item came from, in order."""
    references: list[Reference] | None = None
    errors: list[tuple[str, str]] | None = None
    """``(column, reason)`` found while reading or mapping: the row is rejected."""

    def reject(self, column: str, reason: str) -> None:
        """Refuse the row because of ``column`` (``""``: the whole row)."""
        if self.errors is None:
            self.errors = []
        self.errors.append((column, reason))


class RowMapper:
    """Turns :class:`RawRow` cells into a :class:`MappedRow` following a :class:`ColumnMapping`."""

    def __init__(self, mapping: ColumnMapping, encoding: str = "utf-8") -> None:
        self.mapping = mapping
        self.encoding = encoding
        self.width = len(mapping.header)
        self._plan = [
            (position, mapping.header[position], target)
            for position, target in enumerate(mapping.targets)
            if target is not None
        ]

    def __call__(self, raw: RawRow) -> MappedRow:
        """Map one row; what cannot be read is recorded in :attr:`MappedRow.errors`."""
        cells = raw.cells
        header = self.mapping.header
        row = MappedRow(raw.line, {}, _LazyValues(header, cells))
        if len(cells) != self.width:
            row.reject(
                "",
                f"Has {len(cells)} values where the header has {self.width} columns "
                "(a missing or extra delimiter, or an unclosed quote).",
            )
            return row
        if raw.bad_cells:
            for position in raw.bad_cells:
                row.reject(header[position], f"Not valid {self.encoding}.")
            return row
        data = row.data
        for position, column, target in self._plan:
            value = cells[position].strip()
            if not value:
                continue
            if "\x00" in value:
                row.reject(column, "Contains a NUL character (is it a binary file?).")
                return row
            kind = target.kind
            if kind == "field":
                data[target.field] = target.convert(value) if target.convert else value
            elif kind == "item" or kind == "items":
                self._add_items(row, target, column, value)
            elif kind == "attribute":
                data.setdefault("attributes", {})[target.field] = value
            elif kind == "name":
                first, _sep, last = value.rpartition(" ")
                data.setdefault("first_name", first.strip())
                data.setdefault("last_name", last.strip())
            else:  # reference
                if row.references is None:
                    row.references = []
                row.references.append(
                    Reference(target.field, target.key, value, column, target.lenient)
                )
        return row

    def _add_items(self, row: MappedRow, target: Target, column: str, value: str) -> None:
        list_name = target.field
        value_key = _CHILD_LISTS[list_name][1]
        items = row.data.setdefault(list_name, [])
        if row.item_columns is None:
            row.item_columns = {}
        columns = row.item_columns.setdefault(list_name, [])
        parts = [(value, target.label)] if target.kind == "item" else _several(value, target.label)
        for text, label in parts:
            if any(item[value_key] == text for item in items):
                continue
            items.append({value_key: text, "label": label})
            columns.append(column)


def _several(value: str, label: str) -> list[tuple[str, str]]:
    """Items of a multi-value cell: a JSON list (of strings or objects) or a separated list."""
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            items = []
            for entry in parsed:
                if isinstance(entry, str) and entry.strip():
                    items.append((entry.strip(), label))
                elif isinstance(entry, dict):
                    keys = [k for k in ("email", "number", "phone", "value") if k in entry]
                    text = str(entry[keys[0]]).strip() if keys else ""
                    kind = str(entry.get("type") or entry.get("label") or label).strip().lower()
                    if text:
                        items.append((text, kind[:40] or label))
            return items
    return [(part.strip(), label) for part in _SPLIT.split(value) if part.strip()]


class _LazyValues(Mapping[str, str]):
    """Column -> cell text of one row, without building a dict unless asked."""

    __slots__ = ("_cells", "_header")

    def __init__(self, header: Sequence[str], cells: Sequence[str]) -> None:
        self._header = header
        self._cells = cells

    def __getitem__(self, column: str) -> str:
        try:
            return visible_text(self._cells[self._header.index(column)])
        except (ValueError, IndexError):
            raise KeyError(column) from None

    def __iter__(self) -> Any:
        return iter(self._header[: len(self._cells)])

    def __len__(self) -> int:
        return min(len(self._header), len(self._cells))


# -- value conversions ------------------------------------------------------------------------


def _country_names() -> dict[str, str]:
    names = {
        "usa": "US", "us": "US", "u.s.": "US", "u.s.a.": "US", "united states of america": "US",
        "america": "US", "uk": "GB", "u.k.": "GB", "great britain": "GB", "england": "GB",
        "scotland": "GB", "wales": "GB", "holland": "NL", "the netherlands": "NL",
        "deutschland": "DE", "south korea": "KR", "korea": "KR", "russia": "RU",
        "czech republic": "CZ", "czechia": "CZ", "ivory coast": "CI", "vietnam": "VN",
        "iran": "IR", "syria": "SY", "taiwan": "TW", "bolivia": "BO", "venezuela": "VE",
        "tanzania": "TZ", "laos": "LA", "moldova": "MD", "macedonia": "MK",
    }
    try:
        import phonenumbers
        from phonenumbers.geocoder import _region_display_name

        for region in phonenumbers.SUPPORTED_REGIONS:
            for language in ("en", "de", "fr", "es", "it", "nl", "pt"):
                name = _region_display_name(region, language)
                if name:
                    names.setdefault(name.lower(), region)
    except Exception:  # only a convenience: codes still work without the names
        pass
    return names


_COUNTRIES: dict[str, str] | None = None


def country_code(value: str) -> str:
    """An ISO code for a country name (``United States`` -> ``US``); codes pass unchanged."""
    global _COUNTRIES
    if len(value) == 2:
        return value
    if _COUNTRIES is None:
        _COUNTRIES = _country_names()
    return _COUNTRIES.get(value.strip().lower(), value)


_KINDS = {
    "company": "company", "business": "company", "organisation": "company",
    "organization": "company", "org": "company", "account": "company",
    "person": "person", "individual": "person", "private": "person", "contact": "person",
    "people": "person", "consumer": "person",
}


def customer_kind(value: str) -> str:
    """``company`` or ``person`` for the words exports use (Odoo's ``Individual``...)."""
    return _KINDS.get(value.strip().lower(), value)


def lower(value: str) -> str:
    """Choice values compare in lower case (``Lead`` -> ``lead``)."""
    return value.lower()


_CONVERTERS: dict[tuple[str, str], Callable[[str], Any]] = {
    ("customer", "country"): country_code,
    ("customer", "kind"): customer_kind,
    ("customer", "lifecycle_stage"): lower,
    ("interaction", "channel"): lower,
    ("interaction", "direction"): lower,
}
