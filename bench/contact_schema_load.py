"""Benchmark: what validating one imported contact with its marshmallow schema costs.

An import validates every row with ``crm.loader("contact").load(row)`` (the API's
schema: the same messages, the same rules). This times that call alone for a typical
row of ``bench/import_contacts.py`` (two emails and a phone number) and for the same
row without emails and phones, and prints microseconds per row and the rows per second
one core can validate at most: a floor under any import of such rows. Run
``python bench/contact_schema_load.py [--rows 20000]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

ROW: dict[str, Any] = {
    "external_id": "EXT-00000001",
    "first_name": "Anna",
    "last_name": "Müller",
    "job_title": "CTO",
    "emails": [
        {"label": "work", "email": "anna.muller1@example.com"},
        {"label": "home", "email": "anna.muller1@home.example"},
    ],
    "phones": [{"label": "work", "number": "+49 30 1234567"}],
}


def main() -> None:
    """Time ``schema.load`` for ``--rows`` rows, best of ``--repeat``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from crm_core import CRM
    from crm_core.config import load_settings

    folder = tempfile.mkdtemp(prefix="crm-schema-bench-")
    crm = CRM(
        load_settings(
            {"database_url": f"sqlite:///{folder}/crm.sqlite3", "instance_path": folder,
             "secret_key": "bench-secret-key-bench-secret-key"},
            environ={},
        ),
        discover_plugins=False,
    )
    schema = crm.loader("contact")
    bare = {k: v for k, v in ROW.items() if k not in ("emails", "phones")}
    for label, row in (("with 2 emails and a phone", ROW), ("name, title and id only", bare)):
        best = float("inf")
        for _ in range(args.repeat):
            started = time.process_time()
            for _ in range(args.rows):
                schema.load(row)
            best = min(best, time.process_time() - started)
        per_row = best / args.rows
        print(f"contact schema load, {label:26} {per_row * 1e6:6.1f} µs/row "
              f"= at most {1 / per_row:9,.0f} rows/s per core")
    crm.dispose()


if __name__ == "__main__":
    main()
