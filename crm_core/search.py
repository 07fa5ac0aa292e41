"""Search: customers, contacts and plugins' entities behind one interface.

:func:`search` is the global search (the UI's search box, ``GET /api/v1/search``): it
asks the search provider of every entity (core's customers and contacts, and what
plugins register through ``crm_register_search_providers``) and ranks their hits
together. :func:`search_customers` / :func:`search_contacts` return ranked records;
:func:`matching` is a WHERE clause for ``q=`` on keyset-paginated lists.

Matching, in the order hits rank (:class:`~crm_core.extensions.SearchResult` scores):

1. **exact** (1.0): the whole email address, the phone number as typed or in E.164
   form (``030 1234567`` finds ``+49 30 1234567`` when the region is known), or the
   whole name;
2. **name prefix** (0.9): names starting with the query, case-insensitively, read in
   name order from a B-tree;
3. **word prefixes** (0.8 in the name, 0.7 in other fields): every word of the query
   starts a word of the record: name, email, phone, city; a contact's name, emails,
   phones and company;
4. **fuzzy** (below 0.6): only when the above found fewer hits than asked for, names
   within a typo or two of the query's words.

Every query is an index lookup, never a scan of the table. On SQLite the word index
is FTS5 (``search_customer``, ``search_contact``: words folded to lower case without
diacritics, with prefix indexes) and the fuzzy candidates come from FTS5 trigram
tables; on PostgreSQL from ``pg_trgm`` GIN indexes (word prefixes as ``~ '\\mword'``,
typos by ``word_similarity``). Migration ``0003_core`` creates them and keeps them in
step with every write by triggers. Hits are filtered by
:func:`crm_core.authz.visible` and leave archived records out.
"""

from __future__ import annotations

import difflib
import itertools
import re
import unicodedata
import weakref
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Engine,
    Integer,
    String,
    Text,
    and_,
    column,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session

from crm_core.authz import has_permission, visible
from crm_core.errors import ValidationError
from crm_core.extensions import SearchResult
from crm_core.models import Contact, ContactEmail, ContactPhone, Customer
from crm_core.phones import looks_like_phone_number, to_e164

if TYPE_CHECKING:
    from crm_core.models import User
    from crm_core.runtime import CRM

#: Longer queries are cut to this many characters.
MAX_QUERY_LENGTH = 200
#: The most hits one search returns.
MAX_LIMIT = 100
#: How similar (0..1) a word must be to count as a typo of a query word.
FUZZY_THRESHOLD = 0.75
#: The most fuzzy candidates read per entity before they are ranked.
FUZZY_CANDIDATES = 300

_WORD = re.compile(r"[^\W_]+")
_TOP = "\U0010ffff"  # sorts after every character: q <= x < q + _TOP means x starts with q
_NAMES = weakref.WeakKeyDictionary[Engine, frozenset[str]]()

#: Latin letters with diacritics and what they fold to (as ``search.fold`` and FTS5 do):
#: PostgreSQL's searchable text is folded with ``translate()``, which an index can hold.
PG_FOLD_FROM = (
    "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆ"
    "ćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐő"
    "ŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚ"
    "ǛǜǞǟǠǡǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮ"
    "ȯȰȱȲȳ"
)
PG_FOLD_TO = (
    "aaaaaaceeeeiiiinooooouuuuyaaaaaaceeeeiiiinooooouuuuyyaaaaaac"
    "cccccccddeeeeeeeeeegggggggghhiiiiiiiiijjkkllllllnnnnnnoooooo"
    "rrrrrrssssssssttttuuuuuuuuuuuuwwyyyzzzzzzsoouuaaiioouuuuuuuu"
    "uuaaaaggkkoooojggnnaaaaaaeeeeiiiioooorrrruuuusstthhaaeeooooo"
    "oooyy"
)
_PG_FOLD = f"'{PG_FOLD_FROM}', '{PG_FOLD_TO}'"

#: A customer's searchable text on PostgreSQL: the expression of ``ix_search_customer_document``
#: (migration ``0003_core``), character for character, so that the planner uses the index.
PG_CUSTOMER_DOCUMENT = (
    "translate(lower(coalesce(customer.name, '') || ' ' || coalesce(customer.email, '') || ' ' || "
    "coalesce(customer.phone, '') || ' ' || coalesce(customer.phone_e164, '') || ' ' || "
    f"coalesce(customer.city, '')), {_PG_FOLD})"
)
_fts_customer = table("search_customer", column("rowid", Integer))
_fts_contact = table("search_contact", column("rowid", Integer))
_pg_contact = table(
    "search_contact", column("contact_id", Integer), column("document", Text), column("name", Text)
)


def fold(value: str) -> str:
    """``value`` in lower case without diacritics (``Müller`` -> ``muller``), as indexed."""
    decomposed = unicodedata.normalize("NFKD", value.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def words(value: str | None) -> list[str]:
    """The folded words of ``value`` (letters and digits; everything else separates)."""
    return _WORD.findall(fold(value)) if value else []


class SearchQuery(str):
    """The search text (stripped, spaces collapsed, at most 200 characters), parsed.

    A ``str``, so providers that need no more can treat it as one; core's providers
    also read :attr:`words`, :attr:`email`, :attr:`phone` and :attr:`e164`.
    """

    folded: str
    """The text folded as the index is (lower case, no diacritics)."""
    words: tuple[str, ...]
    """The folded words of the text."""
    lowered_words: tuple[str, ...]
    """The words in lower case, diacritics kept (SQLite's trigram index keeps them)."""
    email: str | None
    """The text in lower case, when it is written like an email address."""
    phone: str | None
    """The text, when it is written like a phone number."""
    e164: str | None
    """That phone number in E.164 form, when it can be read (see :func:`to_e164`)."""

    def __new__(cls, value: str, *, region: str | None = None) -> SearchQuery:
        """Parse ``value``; ``region`` reads phone numbers written without country code."""
        # Control characters and lone surrogates (which no database takes) become spaces.
        printable = "".join(
            " " if unicodedata.category(char) in ("Cc", "Cs") else char for char in str(value)
        )
        cleaned = " ".join(printable.split())[:MAX_QUERY_LENGTH].strip()
        self = super().__new__(cls, cleaned)
        self.folded = fold(cleaned)
        self.words = tuple(_WORD.findall(self.folded))
        self.lowered_words = tuple(_WORD.findall(cleaned.lower()))
        self.email = cleaned.lower() if "@" in cleaned and " " not in cleaned else None
        phone_like = looks_like_phone_number(cleaned)
        self.phone = cleaned if phone_like else None
        self.e164 = to_e164(cleaned, region) if phone_like else None
        self._matchers: dict[str, difflib.SequenceMatcher[str]] = {}
        return self

    def matcher(self, word: str) -> difflib.SequenceMatcher[str]:
        """A ``difflib`` matcher holding ``word`` (analysed once per query)."""
        matcher = self._matchers.get(word)
        if matcher is None:
            matcher = self._matchers[word] = difflib.SequenceMatcher(None, "", word, autojunk=False)
        return matcher


def parse(query: str, region: str | None = None) -> SearchQuery:
    """``query`` as a :class:`SearchQuery` (returned as is when it is one already)."""
    return query if isinstance(query, SearchQuery) else SearchQuery(query, region=region)


# -- the global search ----------------------------------------------------------------


def search(
    crm: CRM,
    session: Session,
    actor: User | None,
    query: str,
    *,
    entities: Collection[str] | None = None,
    limit: int = 20,
) -> list[SearchResult]:
    """The best ``limit`` hits for ``query`` among every entity ``actor`` may search.

    ``entities`` narrows the search to some entities (``customer``, ``contact``, a
    plugin's); an unknown name is a :class:`ValidationError`. Providers ``actor``
    lacks the permission for are skipped. Hits are ordered by score, then title.
    """
    providers = crm.registry.search_providers
    wanted = list(providers) if entities is None else list(dict.fromkeys(entities))
    unknown = sorted(set(wanted) - set(providers))
    if unknown:
        raise ValidationError(
            {"entities": [f"Unknown: {', '.join(unknown)}. Known: {', '.join(sorted(providers))}."]}
        )
    parsed = parse(query, crm.settings.default_phone_region)
    limit = _clamp(limit)
    if not parsed:
        return []
    hits: list[SearchResult] = []
    for entity in wanted:
        provider = providers[entity]
        if provider.permission is not None and not has_permission(actor, provider.permission):
            continue
        hits.extend(provider.search(session, actor, parsed, limit))
    hits.sort(key=lambda hit: (-hit.score, hit.title.casefold(), hit.entity, str(hit.id)))
    return hits[:limit]


def customer_results(
    session: Session, actor: User | None, query: str, limit: int
) -> list[SearchResult]:
    """Core's search provider for customers (``SearchProvider("customer", ...)``)."""
    return [
        SearchResult(
            "customer",
            customer.id,
            customer.name,
            " · ".join(part for part in (customer.email, customer.city) if part),
            score,
        )
        for customer, score in _customer_hits(session, actor, parse(query), limit)
    ]


def contact_results(
    session: Session, actor: User | None, query: str, limit: int
) -> list[SearchResult]:
    """Core's search provider for contacts (``SearchProvider("contact", ...)``)."""
    return [
        SearchResult(
            "contact",
            contact.id,
            contact.full_name,
            " · ".join(part for part in (company, contact.primary_email) if part),
            score,
        )
        for contact, company, score in _contact_hits(session, actor, parse(query), limit)
    ]


def search_customers(
    session: Session, actor: User | None, q: str, limit: int = 20, *, region: str | None = None
) -> list[Customer]:
    """The customers ``actor`` may see that best match ``q``, best first (not archived).

    ``region`` reads phone numbers in ``q`` written without country code (pass the
    ``default_phone_region`` setting). Without ``customer.view``: nothing.
    """
    return [
        customer for customer, _score in _customer_hits(session, actor, parse(q, region), limit)
    ]


def search_contacts(
    session: Session, actor: User | None, q: str, limit: int = 20, *, region: str | None = None
) -> list[Contact]:
    """The contacts ``actor`` may see that best match ``q``, best first (not archived)."""
    return [contact for contact, _c, _s in _contact_hits(session, actor, parse(q, region), limit)]


# -- customers --------------------------------------------------------------------------


def _customer_hits(
    session: Session, actor: User | None, query: SearchQuery, limit: int
) -> list[tuple[Customer, float]]:
    limit = _clamp(limit)
    if not query or not has_permission(actor, "customer.view"):
        return []
    dialect = _dialect(session)
    where = (active(Customer), visible(actor, "customer"))
    found: dict[int, Customer] = {}

    def take(statement: Any) -> int:
        rows = session.scalars(statement).all()
        for record in rows:
            found.setdefault(record.id, record)
        return len(rows)

    for clause in _customer_exact(query):
        take(select(Customer).where(clause, *where).limit(limit))
    if query.email:
        # Emails are stored in lower case: a plain B-tree range finds those starting so.
        take(select(Customer).where(_email_prefix(dialect, "customer", query), *where).limit(limit))
    else:
        key, low, high = _prefix_range(dialect, Customer.name, query)
        prefixed = take(
            select(Customer)
            .where(key >= low, key < high, *where)
            .order_by(key, Customer.id)
            .limit(limit)
        )
        # A full page of names starting with the query: word matches rank below them.
        statement = _word_statement(dialect, Customer, query) if prefixed < limit else None
        if statement is not None:
            take(statement.where(*where).limit(3 * limit))
        if len(found) < limit and not query.phone:
            ids = _fuzzy_ids(session, dialect, "customer", query)
            named = (
                session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(ids)))
                if ids
                else ()
            )
            close = _closest(query, [(ident, name) for ident, name in named if ident not in found])
            if close:
                take(select(Customer).where(Customer.id.in_(close[: 3 * limit]), *where))
    ranked = []
    for record in found.values():
        exact = _is_exact(query, [record.email], [record.phone, record.phone_e164])
        others = [record.email, record.phone, record.phone_e164, record.city]
        score = _score(query, record.name, others, exact)
        if score > 0:
            ranked.append((record, score))
    ranked.sort(key=lambda hit: (-hit[1], fold(hit[0].name), hit[0].id))
    return ranked[:limit]


def _customer_exact(query: SearchQuery) -> list[ColumnElement[bool]]:
    clauses = []
    if query.email:
        clauses.append(Customer.email == query.email)
    if query.e164:
        clauses.append(Customer.phone_e164 == query.e164)
    if query.phone:
        clauses.append(Customer.phone == str(query))
    return clauses


# -- contacts ---------------------------------------------------------------------------


def _contact_hits(
    session: Session, actor: User | None, query: SearchQuery, limit: int
) -> list[tuple[Contact, str | None, float]]:
    limit = _clamp(limit)
    if not query or not has_permission(actor, "contact.view"):
        return []
    dialect = _dialect(session)
    where = (active(Contact), visible(actor, "contact"))
    found: dict[int, Contact] = {}

    def take(statement: Any) -> int:
        rows = session.scalars(statement).all()
        for record in rows:
            found.setdefault(record.id, record)
        return len(rows)

    for clause in _contact_exact(query):
        take(select(Contact).where(clause, *where).limit(limit))
    if query.email:
        take(select(Contact).where(_email_prefix(dialect, "contact", query), *where).limit(limit))
    else:
        key, low, high = _prefix_range(dialect, Contact.last_name, query)
        take(
            select(Contact)
            .where(key >= low, key < high, *where)
            .order_by(key, Contact.id)
            .limit(limit)
        )
        statement = _word_statement(dialect, Contact, query)
        if statement is not None:
            take(statement.where(*where).limit(3 * limit))
        if len(found) < limit and not query.phone:
            ids = _fuzzy_ids(session, dialect, "contact", query)
            named = (
                session.execute(
                    select(Contact.id, Contact.first_name, Contact.last_name).where(
                        Contact.id.in_(ids)
                    )
                )
                if ids
                else ()
            )
            close = _closest(
                query,
                [(ident, f"{first} {last}") for ident, first, last in named if ident not in found],
            )
            if close:
                take(select(Contact).where(Contact.id.in_(close[: 3 * limit]), *where))
    companies = _names(session, {record.customer_id for record in found.values()})
    ranked = []
    for record in found.values():
        company = companies.get(record.customer_id)
        emails = [row.email for row in record.emails]
        phones = [value for row in record.phones for value in (row.number, row.e164)]
        exact = _is_exact(query, emails, phones)
        score = _score(query, record.full_name, [*emails, *phones, company], exact)
        if score > 0:
            ranked.append((record, company, score))
    ranked.sort(key=lambda hit: (-hit[2], fold(hit[0].full_name), hit[0].id))
    return ranked[:limit]


def _contact_exact(query: SearchQuery) -> list[ColumnElement[bool]]:
    clauses = []
    if query.email:
        clauses.append(
            Contact.id.in_(select(ContactEmail.contact_id).where(ContactEmail.email == query.email))
        )
    if query.e164:
        clauses.append(
            Contact.id.in_(select(ContactPhone.contact_id).where(ContactPhone.e164 == query.e164))
        )
    if query.phone:
        clauses.append(
            Contact.id.in_(select(ContactPhone.contact_id).where(ContactPhone.number == str(query)))
        )
    return clauses


def _closest(query: SearchQuery, named: Iterable[tuple[int, str]]) -> list[int]:
    """The ids of fuzzy candidates whose name is close enough to the query, closest first."""
    scored = [(_score(query, name, (), False), ident) for ident, name in named]
    return [ident for score, ident in sorted(scored, key=lambda s: (-s[0], s[1])) if score > 0]


def _email_prefix(dialect: str, entity: str, query: SearchQuery) -> ColumnElement[bool]:
    """Records with an email address starting with the query (or, on PostgreSQL, holding it).

    Emails are stored in lower case: on SQLite a byte-wise range of the email B-tree;
    on PostgreSQL the trigram index of the searchable text (``LIKE '%...%'``).
    """
    value = query.email or ""
    if dialect == "sqlite":
        if entity == "customer":
            return and_(Customer.email >= value, Customer.email < value + _TOP)
        emails = select(ContactEmail.contact_id).where(
            ContactEmail.email >= value, ContactEmail.email < value + _TOP
        )
        return Contact.id.in_(emails)
    pattern = "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if entity == "customer":
        return literal_column(PG_CUSTOMER_DOCUMENT, Text).like(pattern)
    return Contact.id.in_(
        select(_pg_contact.c.contact_id).where(_pg_contact.c.document.like(pattern))
    )


def _names(session: Session, customer_ids: set[int | None]) -> dict[int, str]:
    wanted = {ident for ident in customer_ids if ident is not None}
    if not wanted:
        return {}
    rows = session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(wanted)))
    return {ident: name for ident, name in rows}


# -- q= on lists -------------------------------------------------------------------------


def matching(entity: str, query: str, *, region: str | None = None) -> ColumnElement[bool]:
    """A WHERE clause: records of ``entity`` (``customer`` or ``contact``) matching ``query``.

    For ``q=`` on keyset-paginated lists, combined with their own order and filters:
    every word of ``query`` starts a word of the record (see the module docs), or
    the query is the record's email address or (E.164) phone number. Rendered for
    the dialect the statement runs on; visibility and archiving are the caller's
    filters.
    """
    if entity not in ("customer", "contact"):
        raise ValueError(f"no search index for {entity!r}")
    return _Matches(entity, parse(query, region))


#: A ``q=`` list whose matches are at most this many reads them by id and sorts them.
SPARSE_MATCHES = 2000


def list_filter(
    session: Session, entity: str, query: str, *, region: str | None = None
) -> ColumnElement[bool]:
    """The WHERE clause of ``q=`` on a list of ``entity``, shaped for its query plan.

    The same matches as :func:`matching`. First reads up to :data:`SPARSE_MATCHES` + 1
    matching ids through the search indexes (a search index stops early; SQLite's
    planner has no statistics to tell a rare word from a common one): when that is all
    of them, the clause is ``id IN (those ids)``, so the list reads them by primary key
    and sorts a few thousand rows at most. Otherwise the matches are dense: on SQLite
    the clause keeps the matching ids out of the planner's reach (``id + 0 IN ...``),
    so the list walks its own sort index and fills a page after a few hundred rows.
    """
    dialect = _dialect(session)
    parsed = parse(query, region)
    model: Any = Customer if entity == "customer" else Contact
    exact = _customer_exact(parsed) if entity == "customer" else _contact_exact(parsed)
    exact_ids = (
        set(session.scalars(select(model.id).where(or_(*exact)).limit(SPARSE_MATCHES + 1)))
        if exact
        else set()
    )
    word: Any
    expression = _fts_expression(parsed) if dialect == "sqlite" else None
    if expression is not None:
        fts = _fts_customer if entity == "customer" else _fts_contact
        word_ids = select(fts.c.rowid).where(literal_column(fts.name).match(expression))
        word = model.id.in_(word_ids)
    else:
        word = _word_clause(dialect, entity, parsed)
        if word is None and parsed:
            field = model.name if entity == "customer" else model.last_name
            key, low, high = _prefix_range(dialect, field, parsed)
            word = and_(key >= low, key < high)
        word_ids = select(model.id).where(word) if word is not None else None
    ids = set(exact_ids)
    if word_ids is not None and len(ids) <= SPARSE_MATCHES:
        ids.update(session.scalars(word_ids.limit(SPARSE_MATCHES + 1)))
    if len(ids) <= SPARSE_MATCHES:
        return model.id.in_(sorted(ids))  # no ids: an empty IN, still a primary-key search
    if dialect != "sqlite":
        return _matches_clause(dialect, _Matches(entity, parsed))
    unreachable = model.id + 0  # no index serves an expression: the list's order drives
    options = [unreachable.in_(word_ids)] if expression is not None else [word]
    if exact_ids:
        options.append(unreachable.in_(sorted(exact_ids)))
    return or_(*options)


class _Matches(ColumnElement[bool]):
    """:func:`matching`'s clause; compiled per dialect, since the indexes differ."""

    inherit_cache = False
    type = Boolean()

    def __init__(self, entity: str, query: SearchQuery) -> None:
        self.entity = entity
        self.query = query


def _matches_clause(dialect: str, element: _Matches) -> ColumnElement[bool]:
    query = element.query
    if element.entity == "customer":
        exact = _customer_exact(query)
        field: Any = Customer.name
    else:
        exact = _contact_exact(query)
        field = Contact.last_name
    clause = _word_clause(dialect, element.entity, query)
    if clause is None and query:
        key, low, high = _prefix_range(dialect, field, query)
        clause = and_(key >= low, key < high)
    options = [c for c in (clause, *exact) if c is not None]
    if not options:
        return false()
    return or_(*options) if len(options) > 1 else options[0]


@compiles(_Matches)
def _compile_matches(element: _Matches, compiler: Any, **kw: Any) -> str:
    raise CompileError(f"search supports SQLite and PostgreSQL, not {compiler.dialect.name}")


# Parenthesised: the element is one operand wherever it stands (``... AND (a OR b)``).
@compiles(_Matches, "sqlite")
def _compile_matches_sqlite(element: _Matches, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(_matches_clause('sqlite', element), **kw)})"


@compiles(_Matches, "postgresql")
def _compile_matches_postgresql(element: _Matches, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(_matches_clause('postgresql', element), **kw)})"


# -- the index lookups, per dialect ----------------------------------------------------------


def _dialect(session: Session) -> str:
    name = session.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise CompileError(f"search supports SQLite and PostgreSQL, not {name}")
    return name


def _prefix_range(dialect: str, field: Any, query: SearchQuery) -> tuple[Any, Any, Any]:
    """``(key, low, high)``: ``low <= key < high`` keeps values starting with the query.

    Case-insensitive and served by ``ix_search_*`` B-trees, in their order: SQLite's
    ``NOCASE`` (ASCII case folding), PostgreSQL's ``lower()`` compared byte-wise (``C``).
    """
    value = str(query)
    if dialect == "sqlite":
        return field.collate("NOCASE"), literal(value, String), literal(value + _TOP, String)
    key = func.lower(field).collate("C")
    return key, func.lower(literal(value, String)), func.lower(literal(value, String)) + _TOP


def active(model: Any) -> ColumnElement[bool]:
    """Not archived, written so that no index serves it.

    An index on ``archived`` (such as ``ix_customer_archived_name``) looks selective to
    SQLite's planner without statistics, and would make it read every active record
    instead of the few that match: the filter is applied to the rows found otherwise.
    """
    return func.coalesce(model.archived, False).is_(False)


def _word_statement(dialect: str, model: Any, query: SearchQuery) -> Any:
    """A SELECT of ``model`` records where every query word starts a word (``None``: none).

    On SQLite the FTS5 table drives the join (its matches in rowid order, each record
    read by primary key), so a ``LIMIT`` stops reading early.
    """
    entity = "customer" if model is Customer else "contact"
    if dialect != "sqlite":
        clause = _word_clause(dialect, entity, query)
        return None if clause is None else select(model).where(clause)
    expression = _fts_expression(query)
    if expression is None:
        return None
    fts = _fts_customer if entity == "customer" else _fts_contact
    return (
        select(model)
        .select_from(fts)
        .join(model, model.id == fts.c.rowid)
        .where(literal_column(fts.name).match(expression))
    )


def _fts_expression(query: SearchQuery) -> str | None:
    # Prefix indexes cover 2 and 3 characters; a 1-character word would read every
    # word starting with it, so it only narrows the ranking (done in Python).
    usable = [word for word in query.words if len(word) >= 2]
    return " ".join(f'"{word}"*' for word in usable) if usable else None


def _word_clause(dialect: str, entity: str, query: SearchQuery) -> ColumnElement[bool] | None:
    """Every word of the query starts a word of the record (``None``: nothing to ask)."""
    model: Any = Customer if entity == "customer" else Contact
    if dialect == "sqlite":
        expression = _fts_expression(query)
        if expression is None:
            return None
        fts = _fts_customer if entity == "customer" else _fts_contact
        return model.id.in_(select(fts.c.rowid).where(literal_column(fts.name).match(expression)))
    # pg_trgm reads trigrams from the pattern: words under 3 characters give none, so
    # they only narrow what the longer words find through the index.
    if not any(len(word) >= 3 for word in query.words):
        return None
    if entity == "customer":
        document = literal_column(PG_CUSTOMER_DOCUMENT, Text)
        return and_(*(document.regexp_match(rf"\m{word}") for word in query.words))
    return model.id.in_(
        select(_pg_contact.c.contact_id).where(
            *(_pg_contact.c.document.regexp_match(rf"\m{word}") for word in query.words)
        )
    )


def similar_name_ids(session: Session, entity: str, name: str) -> list[int]:
    """Ids of ``entity`` records (any, archived too) whose name may be like ``name``.

    Candidates for duplicate detection, read from the search indexes: names holding
    every word of ``name``, and names within typos of its words. At most
    :data:`FUZZY_CANDIDATES` + 50; compare the names themselves to decide.
    """
    if entity not in ("customer", "contact"):
        raise ValueError(f"no search index for {entity!r}")
    query = SearchQuery(name)
    if not query.words:
        return []
    dialect = _dialect(session)
    ids: dict[int, None] = {}
    if dialect == "sqlite":
        fts = _fts_customer if entity == "customer" else _fts_contact
        expression = "name : (" + " ".join(f'"{word}"' for word in query.words) + ")"
        statement = select(fts.c.rowid).where(literal_column(fts.name).match(expression))
    else:
        usable = [word for word in query.words if len(word) >= 3]
        if entity == "customer":
            document = literal_column(PG_CUSTOMER_DOCUMENT, Text)
            statement = select(Customer.id).where(
                *(document.regexp_match(rf"\m{word}\M") for word in usable)
            )
        else:
            statement = select(_pg_contact.c.contact_id).where(
                *(_pg_contact.c.document.regexp_match(rf"\m{word}\M") for word in usable)
            )
        if not usable:
            statement = statement.where(false())
    ids.update(dict.fromkeys(session.scalars(statement.limit(50))))
    ids.update(dict.fromkeys(_fuzzy_ids(session, dialect, entity, query)))
    return list(ids)


def _fuzzy_ids(session: Session, dialect: str, entity: str, query: SearchQuery) -> list[int]:
    """Ids of records whose name may be a typo away from the query's words."""
    candidates = [word for word in query.lowered_words if len(word) >= 3]
    if not candidates:
        return []
    if dialect == "postgresql":
        phrase = " ".join(query.words)
        session.execute(select(func.set_config("pg_trgm.word_similarity_threshold", "0.4", True)))
        if entity == "customer":
            document = literal_column(PG_CUSTOMER_DOCUMENT, Text)
            statement = (
                select(Customer.id)
                .where(literal(phrase, Text).op("<%")(document))
                .order_by(func.word_similarity(literal(phrase, Text), document).desc())
            )
        else:
            statement = (
                select(_pg_contact.c.contact_id)
                .where(literal(phrase, Text).op("<%")(_pg_contact.c.document))
                .order_by(
                    func.word_similarity(literal(phrase, Text), _pg_contact.c.document).desc()
                )
            )
        return list(session.scalars(statement.limit(FUZZY_CANDIDATES)))
    index = f"search_{entity}_trgm"
    if index not in _search_tables(session):
        return []  # SQLite before 3.34: no trigram tokenizer
    expression = _trigram_expression(session, index, candidates)
    if expression is None:
        return []
    return list(
        session.scalars(
            text(f"SELECT rowid FROM {index} WHERE {index} MATCH :expression LIMIT :limit"),
            {"expression": expression, "limit": FUZZY_CANDIDATES},
        )
    )


def _trigram_expression(session: Session, index: str, candidates: Sequence[str]) -> str | None:
    """An FTS5 query finding names that share enough trigrams with a word to be a typo of it.

    One typo changes at most three trigrams of a word (four for swapped letters), so
    a name within one typo still has all but four of the word's trigrams: it holds two
    of any six of them. The six rarest are paired (``(a AND b) OR ...``), which keeps
    the candidates few even when some trigrams are common.
    """
    grams = {word: _trigrams(word) | _trigrams(fold(word)) for word in candidates}
    every = sorted(set().union(*grams.values()))
    vocabulary = f"{index}_vocab"
    rows = session.execute(
        text(
            f"SELECT term, doc FROM {vocabulary} WHERE term IN "
            f"({', '.join(f':t{i}' for i in range(len(every)))})"
        ),
        {f"t{i}": gram for i, gram in enumerate(every)},
    )
    frequency: dict[str, int] = {term: count for term, count in rows}
    alternatives = []
    for word in candidates:
        present = sorted((g for g in grams[word] if g in frequency), key=lambda g: frequency[g])
        rarest = present[:6]
        if len(rarest) >= 3:
            alternatives += [
                f"({_phrase(a)} AND {_phrase(b)})" for a, b in itertools.combinations(rarest, 2)
            ]
        else:
            alternatives += [_phrase(gram) for gram in rarest]
    return " OR ".join(alternatives) or None


def _trigrams(word: str) -> set[str]:
    return {word[i : i + 3] for i in range(len(word) - 2)}


def _phrase(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _search_tables(session: Session) -> frozenset[str]:
    """The ``search_*`` tables of the database (read once per engine)."""
    engine = session.get_bind().engine
    names = _NAMES.get(engine)
    if names is None:
        names = frozenset(
            session.scalars(
                text("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'search%'")
            )
        )
        _NAMES[engine] = names
    return names


# -- ranking --------------------------------------------------------------------------------


def _is_exact(
    query: SearchQuery, emails: Iterable[str | None], phones: Iterable[str | None]
) -> bool:
    if query.email and query.email in {email for email in emails if email}:
        return True
    if query.phone:
        numbers = {phone for phone in phones if phone}
        return str(query) in numbers or (query.e164 is not None and query.e164 in numbers)
    return False


def _score(query: SearchQuery, name: str, others: Iterable[str | None], exact: bool) -> float:
    """The hit's score (see :class:`~crm_core.extensions.SearchResult`); 0: no match."""
    folded = fold(name)
    if exact or folded == query.folded:
        return 1.0
    if folded.startswith(query.folded):
        return 0.9
    name_words = _WORD.findall(folded)
    if _all_start(query.words, name_words):
        return 0.8
    if _all_start(query.words, name_words + [w for value in others for w in words(value)]):
        return 0.7
    similarity = _similarity(query, name_words)
    return round(0.6 * similarity, 3) if similarity >= FUZZY_THRESHOLD else 0.0


def _all_start(wanted: Sequence[str], present: Sequence[str]) -> bool:
    return bool(wanted) and all(any(w.startswith(q) for w in present) for q in wanted)


def _similarity(query: SearchQuery, present: Sequence[str]) -> float:
    """How close the query's words come to the name's (0..1), each to its best match.

    A word is compared with whole words and with their beginnings (one letter longer
    than the word), so that a typo in a word typed half-way (``shmi`` for ``Schmidt``)
    still counts. Words under three
    characters must start a word of the name; every word must come within
    :data:`FUZZY_THRESHOLD` of one (else 0), and the result is their mean.
    """
    if not query.words or not present:
        return 0.0
    total = 0.0
    for word in query.words:
        if len(word) < 3:
            best = 1.0 if any(candidate.startswith(word) for candidate in present) else 0.0
        else:
            best = _best_ratio(query.matcher(word), word, present)
        if best < FUZZY_THRESHOLD:
            return 0.0
        total += best
    return total / len(query.words)


def _best_ratio(matcher: difflib.SequenceMatcher[str], word: str, present: Sequence[str]) -> float:
    """``word``'s best ``difflib`` ratio against ``present`` words or their beginnings.

    ``matcher`` holds ``word`` as its second sequence (analysed once); the cheap upper
    bounds skip candidates that cannot beat the best so far.
    """
    best = 0.0
    for candidate in present:
        # A word typed half-way, with a typo (``shmi`` for ``schmidt``): its beginning.
        start = candidate[: len(word) + 1]
        variants = [candidate] if start == candidate else [candidate, start]
        for variant in variants:
            matcher.set_seq1(variant)
            if matcher.real_quick_ratio() > best and matcher.quick_ratio() > best:
                best = max(best, matcher.ratio())
    return best


def _clamp(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError({"limit": [f"Give a whole number from 1 to {MAX_LIMIT}."]})
    return min(limit, MAX_LIMIT)


__all__ = [
    "FUZZY_THRESHOLD",
    "MAX_LIMIT",
    "MAX_QUERY_LENGTH",
    "SearchQuery",
    "contact_results",
    "customer_results",
    "fold",
    "matching",
    "parse",
    "search",
    "search_contacts",
    "search_customers",
    "words",
]
