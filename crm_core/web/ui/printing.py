"""PDF printouts of UI pages: the page's own HTML, laid out by WeasyPrint for paper.

The PDF of a page is the page as the browser gets it, rendered with the stylesheet's
``@media print`` rules (no navigation, no forms, cards kept whole). WeasyPrint reads
only the UI's own static files from disk: it never fetches a URL, so a printout cannot
be made to reach other hosts, and it never calls back into the running server.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Response, current_app, request, url_for
from flask_babel import gettext as _


class PrintoutUnavailable(Exception):
    """The server cannot make PDFs (a system library is missing); the message says which."""


#: Where the UI's stylesheet and icons are read from.
STATIC = Path(__file__).resolve().parent.parent / "static"


def pdf_response(html: str, filename: str) -> Response:
    """``html`` as a PDF document, shown in the browser (``inline``) as ``filename``."""
    try:
        import weasyprint  # heavy: loaded on the first printout, not at every start
    except (OSError, ImportError) as exc:  # Pango missing: say what to install, not a bare 500
        current_app.logger.error("PDF printouts need Pango: %s", exc)
        raise PrintoutUnavailable(
            _(
                "PDF printouts need the Pango library on the server "
                "(Debian: %(command)s).",
                command="apt-get install libpango-1.0-0 libpangoft2-1.0-0",
            )
        ) from exc

    fetcher = _static_files_fetcher(url_for("crm_ui.static", filename=""))
    document = weasyprint.HTML(string=html, base_url=request.host_url, url_fetcher=fetcher)
    return Response(
        document.write_pdf(),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )


def _static_files_fetcher(prefix: str) -> Any:
    """A WeasyPrint URL fetcher that reads the UI's static files (under ``prefix``) from disk
    and refuses every other URL (WeasyPrint then leaves that resource out, with a warning)."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticFiles(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            path = urlsplit(url).path
            if not path.startswith(prefix):
                current_app.logger.info("printout: not fetching %s", url)
                raise ValueError(f"printouts read only the UI's own files, not {url}")
            target = (STATIC / path[len(prefix) :]).resolve()
            if not target.is_relative_to(STATIC) or not target.is_file():
                raise ValueError(f"no such file: {path}")
            mime_type, _encoding = mimetypes.guess_type(target.name)
            return URLFetcherResponse(
                url,
                body=target.read_bytes(),
                headers={"Content-Type": mime_type or "application/octet-stream"},
            )

    return StaticFiles()
