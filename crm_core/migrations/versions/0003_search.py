"""Search indexes: SQLite FTS5 tables kept in sync by triggers; PostgreSQL pg_trgm indexes.

None of these objects is a model: they are named ``search_*`` (tables, triggers,
functions) and ``ix_search_*`` (indexes), a naming rule ``crm_core.migrate`` uses
to leave them out of ``alembic check``. ``crm_core.search`` queries them.

SQLite
  ``search_customer``        FTS5 over customer name, email, phone, phone_e164 and
                             city (external content: the ``customer`` table), words
                             folded to lower case without diacritics, prefix indexes
                             for 2 and 3 characters: word-prefix queries.
  ``search_customer_trgm``   FTS5 trigram index of customer names (typo-tolerant
                             candidates), with ``search_customer_trgm_vocab``, its
                             trigram frequencies.
  ``search_contact``         FTS5 document per contact: name, emails, phone numbers
                             (as typed and E.164) and the customer's name.
  ``search_contact_trgm``    trigram index of contact names (+ ``_vocab``).
  ``ix_search_customer_name`` / ``ix_search_contact_last_name``: B-trees on
                             ``name`` / ``last_name`` ``COLLATE NOCASE``, for ordered,
                             case-insensitive prefix ranges.
  Triggers ``search_*`` on customer, contact, contact_email and contact_phone keep
  the FTS tables in step with every write, whoever makes it.

PostgreSQL
  ``pg_trgm`` (a trusted extension since PostgreSQL 13); ``ix_search_customer_name``
  (B-tree on ``lower(name) COLLATE "C"``, for ordered prefix ranges);
  ``ix_search_customer_document`` (GIN trigram index on the customer's name, email,
  phone, E.164 phone and city, in lower case and with diacritics of Latin letters
  folded by ``translate()``, as FTS5 folds them); the ``search_contact`` table (one
  document per contact, folded alike, kept by triggers) with a GIN trigram index; and
  ``ix_search_contact_last_name``.

A later revision that rebuilds ``customer``, ``contact``, ``contact_email`` or
``contact_phone`` on SQLite (batch mode copies the table and drops the original)
drops their triggers with them: it must create them again (copy them from here).

The revision also fills the E.164 columns (added by 0002) of existing rows.

Revision ID: 0003_core
Revises: 0002_core
Create Date: 2026-11-23 21:10:00.000000
"""

import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0003_core"
down_revision: str | Sequence[str] | None = "0002_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: SQLite's trigram tokenizer arrived in 3.34; without it there is no typo tolerance.
SQLITE_TRIGRAM = sqlite3.sqlite_version_info >= (3, 34)

_WORDS = "tokenize='unicode61 remove_diacritics 2', prefix='2 3'"
_CUSTOMER_COLUMNS = "name, email, phone, phone_e164, city"


def _contact_document(ids: str) -> str:
    """SQLite statements that rebuild the ``search_contact`` rows of the contacts ``ids``."""
    return f"""
    DELETE FROM search_contact WHERE rowid IN ({ids});{_contact_rows(ids)};"""


def _contact_rows(ids: str) -> str:
    """A SQLite statement that indexes the contacts ``ids`` in ``search_contact``."""
    return f"""
    INSERT INTO search_contact (rowid, name, emails, phones, company)
    SELECT c.id,
           trim(c.first_name || ' ' || c.last_name),
           (SELECT group_concat(e.email, ' ') FROM contact_email AS e WHERE e.contact_id = c.id),
           (SELECT group_concat(p.number || ' ' || coalesce(p.e164, ''), ' ')
              FROM contact_phone AS p WHERE p.contact_id = c.id),
           (SELECT cu.name FROM customer AS cu WHERE cu.id = c.customer_id)
      FROM contact AS c WHERE c.id IN ({ids})"""


def _sqlite_statements() -> list[str]:
    customer_new = ", ".join(f"new.{c.strip()}" for c in _CUSTOMER_COLUMNS.split(","))
    customer_old = ", ".join(f"old.{c.strip()}" for c in _CUSTOMER_COLUMNS.split(","))
    trigram = SQLITE_TRIGRAM
    statements = [
        f"""CREATE VIRTUAL TABLE search_customer USING fts5(
            {_CUSTOMER_COLUMNS}, content='customer', content_rowid='id', {_WORDS})""",
        f"""CREATE VIRTUAL TABLE search_contact USING fts5(
            name, emails, phones, company, {_WORDS})""",
        "CREATE INDEX ix_search_customer_name ON customer (name COLLATE NOCASE, id)",
        "CREATE INDEX ix_search_contact_last_name ON contact (last_name COLLATE NOCASE, id)",
    ]
    if trigram:
        statements += [
            """CREATE VIRTUAL TABLE search_customer_trgm USING fts5(
                name, content='customer', content_rowid='id', tokenize='trigram', detail='none')""",
            "CREATE VIRTUAL TABLE search_customer_trgm_vocab USING fts5vocab(search_customer_trgm, 'row')",
            """CREATE VIRTUAL TABLE search_contact_trgm USING fts5(
                name, tokenize='trigram', detail='none')""",
            "CREATE VIRTUAL TABLE search_contact_trgm_vocab USING fts5vocab(search_contact_trgm, 'row')",
        ]
    customer_trgm_insert = (
        "INSERT INTO search_customer_trgm (rowid, name) VALUES (new.id, new.name);"
        if trigram
        else ""
    )
    customer_trgm_delete = (
        "INSERT INTO search_customer_trgm (search_customer_trgm, rowid, name) "
        "VALUES ('delete', old.id, old.name);"
        if trigram
        else ""
    )
    contact_trgm_insert = (
        "INSERT INTO search_contact_trgm (rowid, name) "
        "VALUES (new.id, trim(new.first_name || ' ' || new.last_name));"
        if trigram
        else ""
    )
    contact_trgm_delete = "DELETE FROM search_contact_trgm WHERE rowid = old.id;" if trigram else ""
    statements += [
        f"""CREATE TRIGGER search_customer_insert AFTER INSERT ON customer BEGIN
            INSERT INTO search_customer (rowid, {_CUSTOMER_COLUMNS}) VALUES (new.id, {customer_new});
            {customer_trgm_insert}
        END""",
        f"""CREATE TRIGGER search_customer_delete AFTER DELETE ON customer BEGIN
            INSERT INTO search_customer (search_customer, rowid, {_CUSTOMER_COLUMNS})
                VALUES ('delete', old.id, {customer_old});
            {customer_trgm_delete}
        END""",
        f"""CREATE TRIGGER search_customer_update
            AFTER UPDATE OF {_CUSTOMER_COLUMNS} ON customer BEGIN
            INSERT INTO search_customer (search_customer, rowid, {_CUSTOMER_COLUMNS})
                VALUES ('delete', old.id, {customer_old});
            INSERT INTO search_customer (rowid, {_CUSTOMER_COLUMNS}) VALUES (new.id, {customer_new});
            {customer_trgm_delete}
            {customer_trgm_insert}
        END""",
        f"""CREATE TRIGGER search_customer_rename AFTER UPDATE OF name ON customer
            WHEN old.name IS NOT new.name BEGIN
            {_contact_document("SELECT id FROM contact WHERE customer_id = new.id")}
        END""",
        f"""CREATE TRIGGER search_contact_insert AFTER INSERT ON contact BEGIN
            {_contact_document("new.id")}
            {contact_trgm_insert}
        END""",
        f"""CREATE TRIGGER search_contact_update
            AFTER UPDATE OF first_name, last_name, customer_id ON contact BEGIN
            {_contact_document("new.id")}
            {contact_trgm_delete}
            {contact_trgm_insert}
        END""",
        f"""CREATE TRIGGER search_contact_delete AFTER DELETE ON contact BEGIN
            DELETE FROM search_contact WHERE rowid = old.id;
            {contact_trgm_delete}
        END""",
    ]
    for child in ("contact_email", "contact_phone"):
        statements += [
            f"""CREATE TRIGGER search_{child}_insert AFTER INSERT ON {child} BEGIN
                {_contact_document("new.contact_id")}
            END""",
            f"""CREATE TRIGGER search_{child}_update AFTER UPDATE ON {child} BEGIN
                {_contact_document("old.contact_id, new.contact_id")}
            END""",
            f"""CREATE TRIGGER search_{child}_delete AFTER DELETE ON {child} BEGIN
                {_contact_document("old.contact_id")}
            END""",
        ]
    # Index what is already there.
    statements.append("INSERT INTO search_customer (search_customer) VALUES ('rebuild')")
    statements.append(_contact_rows("SELECT id FROM contact"))
    if trigram:
        statements += [
            "INSERT INTO search_customer_trgm (search_customer_trgm) VALUES ('rebuild')",
            "INSERT INTO search_contact_trgm (rowid, name) "
            "SELECT id, trim(first_name || ' ' || last_name) FROM contact",
        ]
    return statements


_SQLITE_DROP = [
    *(
        f"DROP TRIGGER IF EXISTS search_{name}"
        for name in (
            "customer_insert",
            "customer_delete",
            "customer_update",
            "customer_rename",
            "contact_insert",
            "contact_update",
            "contact_delete",
            "contact_email_insert",
            "contact_email_update",
            "contact_email_delete",
            "contact_phone_insert",
            "contact_phone_update",
            "contact_phone_delete",
        )
    ),
    "DROP TABLE IF EXISTS search_customer_trgm_vocab",
    "DROP TABLE IF EXISTS search_contact_trgm_vocab",
    "DROP TABLE IF EXISTS search_customer_trgm",
    "DROP TABLE IF EXISTS search_contact_trgm",
    "DROP TABLE IF EXISTS search_customer",
    "DROP TABLE IF EXISTS search_contact",
    "DROP INDEX IF EXISTS ix_search_customer_name",
    "DROP INDEX IF EXISTS ix_search_contact_last_name",
]

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

#: The customer's searchable text on PostgreSQL; ``crm_core.search`` uses the same text.
PG_CUSTOMER_DOCUMENT = (
    "translate(lower(coalesce(customer.name, '') || ' ' || coalesce(customer.email, '') || ' ' || "
    "coalesce(customer.phone, '') || ' ' || coalesce(customer.phone_e164, '') || ' ' || "
    f"coalesce(customer.city, '')), {_PG_FOLD})"
)

_PG_CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    'CREATE INDEX ix_search_customer_name ON customer ((lower(name)) COLLATE "C", id)',
    f"CREATE INDEX ix_search_customer_document ON customer USING gin "
    f"(({PG_CUSTOMER_DOCUMENT}) gin_trgm_ops)",
    'CREATE INDEX ix_search_contact_last_name ON contact ((lower(last_name)) COLLATE "C", id)',
    """CREATE TABLE search_contact (
        contact_id integer NOT NULL,
        name text NOT NULL,
        document text NOT NULL,
        CONSTRAINT pk_search_contact PRIMARY KEY (contact_id),
        CONSTRAINT fk_search_contact_contact_id_contact FOREIGN KEY (contact_id)
            REFERENCES contact (id) ON DELETE CASCADE
    )""",
    "CREATE INDEX ix_search_contact_document ON search_contact USING gin (document gin_trgm_ops)",
    f"""CREATE FUNCTION search_contact_refresh(ids integer[]) RETURNS void
    LANGUAGE sql AS $$
        INSERT INTO search_contact (contact_id, name, document)
        SELECT c.id,
               translate(lower(trim(c.first_name || ' ' || c.last_name)), {_PG_FOLD}),
               translate(lower(concat_ws(' ', c.first_name, c.last_name,
                   (SELECT string_agg(e.email, ' ') FROM contact_email AS e
                     WHERE e.contact_id = c.id),
                   (SELECT string_agg(p.number || ' ' || coalesce(p.e164, ''), ' ')
                      FROM contact_phone AS p WHERE p.contact_id = c.id),
                   (SELECT cu.name FROM customer AS cu WHERE cu.id = c.customer_id))), {_PG_FOLD})
          FROM contact AS c
         WHERE c.id = ANY (ids)
        ON CONFLICT (contact_id) DO UPDATE
           SET name = excluded.name, document = excluded.document
    $$""",
    """CREATE FUNCTION search_contact_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM search_contact_refresh(ARRAY[NEW.id]);
        RETURN NULL;
    END
    $$""",
    """CREATE FUNCTION search_contact_child_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM search_contact_refresh(ARRAY[OLD.contact_id]);
        ELSIF TG_OP = 'UPDATE' THEN
            PERFORM search_contact_refresh(ARRAY[OLD.contact_id, NEW.contact_id]);
        ELSE
            PERFORM search_contact_refresh(ARRAY[NEW.contact_id]);
        END IF;
        RETURN NULL;
    END
    $$""",
    """CREATE FUNCTION search_customer_renamed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM search_contact_refresh(
            ARRAY(SELECT id FROM contact WHERE customer_id = NEW.id));
        RETURN NULL;
    END
    $$""",
    """CREATE TRIGGER search_contact_changed
        AFTER INSERT OR UPDATE OF first_name, last_name, customer_id ON contact
        FOR EACH ROW EXECUTE FUNCTION search_contact_changed()""",
    """CREATE TRIGGER search_contact_email_changed
        AFTER INSERT OR UPDATE OR DELETE ON contact_email
        FOR EACH ROW EXECUTE FUNCTION search_contact_child_changed()""",
    """CREATE TRIGGER search_contact_phone_changed
        AFTER INSERT OR UPDATE OR DELETE ON contact_phone
        FOR EACH ROW EXECUTE FUNCTION search_contact_child_changed()""",
    """CREATE TRIGGER search_customer_renamed
        AFTER UPDATE OF name ON customer
        FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name)
        EXECUTE FUNCTION search_customer_renamed()""",
    "SELECT search_contact_refresh(ARRAY(SELECT id FROM contact))",
]

_PG_DROP = [
    "DROP TRIGGER IF EXISTS search_customer_renamed ON customer",
    "DROP TRIGGER IF EXISTS search_contact_phone_changed ON contact_phone",
    "DROP TRIGGER IF EXISTS search_contact_email_changed ON contact_email",
    "DROP TRIGGER IF EXISTS search_contact_changed ON contact",
    "DROP FUNCTION IF EXISTS search_customer_renamed()",
    "DROP FUNCTION IF EXISTS search_contact_child_changed()",
    "DROP FUNCTION IF EXISTS search_contact_changed()",
    "DROP FUNCTION IF EXISTS search_contact_refresh(integer[])",
    "DROP TABLE IF EXISTS search_contact",
    "DROP INDEX IF EXISTS ix_search_contact_last_name",
    "DROP INDEX IF EXISTS ix_search_customer_document",
    "DROP INDEX IF EXISTS ix_search_customer_name",
    # pg_trgm stays: other code of the database may use it.
]


def _fill_e164() -> None:
    """Give existing phone numbers their E.164 form (before the indexes, so it is quick)."""
    from crm_core.phones import to_e164

    crm = context.config.attributes.get("crm")
    default = getattr(getattr(crm, "settings", None), "default_phone_region", None)
    bind = op.get_bind()
    customer = sa.table(
        "customer",
        sa.column("id", sa.Integer),
        sa.column("phone", sa.String),
        sa.column("country", sa.String),
        sa.column("phone_e164", sa.String),
    )
    rows = bind.execute(
        sa.select(customer.c.id, customer.c.phone, customer.c.country).where(
            customer.c.phone.is_not(None), customer.c.phone_e164.is_(None)
        )
    ).all()
    updates = [
        {"key": ident, "e164": e164}
        for ident, phone, country in rows
        if (e164 := to_e164(phone, country or default)) is not None
    ]
    if updates:
        bind.execute(
            sa.update(customer)
            .where(customer.c.id == sa.bindparam("key"))
            .values(phone_e164=sa.bindparam("e164")),
            updates,
        )
    phone = sa.table(
        "contact_phone",
        sa.column("id", sa.Integer),
        sa.column("contact_id", sa.Integer),
        sa.column("number", sa.String),
        sa.column("e164", sa.String),
    )
    contact = sa.table("contact", sa.column("id", sa.Integer), sa.column("customer_id", sa.Integer))
    rows = bind.execute(
        sa.select(phone.c.id, phone.c.number, customer.c.country)
        .select_from(
            phone.join(contact, contact.c.id == phone.c.contact_id).outerjoin(
                customer, customer.c.id == contact.c.customer_id
            )
        )
        .where(phone.c.e164.is_(None))
    ).all()
    updates = [
        {"key": ident, "value": e164}
        for ident, number, country in rows
        if (e164 := to_e164(number, country or default)) is not None
    ]
    if updates:
        bind.execute(
            sa.update(phone)
            .where(phone.c.id == sa.bindparam("key"))
            .values(e164=sa.bindparam("value")),
            updates,
        )


def upgrade() -> None:
    _fill_e164()
    statements = _sqlite_statements() if op.get_bind().dialect.name == "sqlite" else _PG_CREATE
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    statements = _SQLITE_DROP if op.get_bind().dialect.name == "sqlite" else _PG_DROP
    for statement in statements:
        op.execute(statement)
