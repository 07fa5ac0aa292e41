"""MkDocs hooks: pages that include files from outside ``docs/``, and links that survive.

The Markdown under ``docs/`` is written to read well on a forge too, so it links to files
beside it in the repository (``../bench/README.md``). MkDocs only knows ``docs/``: this
hook expands ``<!-- include: PATH[#section] [shift=N] -->`` lines (``PATH`` relative to the
page, as a link would be) with that file's text, and rewrites every relative link that
leaves ``docs/``: to the page that includes the target when there is one, else to the
path in code (the reader finds it in the repository). Fenced code is never touched.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

INCLUDE = re.compile(
    r"^<!-- include: (?P<path>[^\s#]+)(?:#(?P<section>[\w-]+))?(?: shift=(?P<shift>\d))? -->$",
    re.M,
)
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6}) +(.+?) *$", re.M)

#: repository path of a whole included file -> the docs page (src path) that includes it
_PAGES: dict[str, str] = {}


def on_files(files: Files, config: Any) -> Files:
    """Find which page includes which whole repository file, for links to point there."""
    _PAGES.clear()
    for file in files.documentation_pages():
        text = Path(file.abs_src_path).read_text(encoding="utf-8")
        for found in INCLUDE.finditer(text):
            if found.group("section") is None:
                repo_path = _repo_path(_page_dir(file.src_uri), found.group("path"))
                _PAGES.setdefault(repo_path, file.src_uri)
    return files


def on_page_markdown(markdown: str, page: Page, config: Any, files: Files) -> str:
    """Expand the page's includes, then point its links that leave ``docs/`` somewhere valid."""
    page_dir = _page_dir(page.file.src_uri)
    root = Path(config["docs_dir"]).parent

    def include(found: re.Match[str]) -> str:
        repo_path = _repo_path(page_dir, found.group("path"))
        text = (root / repo_path).read_text(encoding="utf-8")
        if found.group("section"):
            text = section(text, found.group("section"), repo_path)
        text = shift_headings(text, int(found.group("shift") or 0))
        return rewrite_links(text, posixpath.dirname(repo_path), page.file.src_uri, repo_path, root)

    markdown = INCLUDE.sub(include, markdown)
    return rewrite_links(markdown, page_dir, page.file.src_uri, None, root)


def _page_dir(src_uri: str) -> str:
    """The repository folder of a docs page (``docs/plugins`` for ``plugins/x.md``)."""
    return posixpath.join("docs", posixpath.dirname(src_uri)).rstrip("/")


def _repo_path(base_dir: str, target: str) -> str:
    """``target`` (relative to the repository folder ``base_dir``) as a repository path."""
    path = posixpath.normpath(posixpath.join(base_dir, target))
    if path.startswith(".."):
        raise ValueError(f"{target!r} from {base_dir!r} leaves the repository")
    return path


def _outside_code(text: str, change: Any) -> str:
    """``text`` with ``change`` applied to every part outside fenced code blocks."""
    parts, last = [], 0
    for fence in FENCE.finditer(text):
        parts += [change(text[last : fence.start()]), fence.group(0)]
        last = fence.end()
    return "".join([*parts, change(text[last:])])


def slug(heading: str) -> str:
    """The anchor a forge (and this site's ``toc`` settings) gives ``heading``."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def section(text: str, anchor: str, where: str) -> str:
    """The section of ``text`` under the heading whose anchor is ``anchor``, heading included."""
    in_code = [(fence.start(), fence.end()) for fence in FENCE.finditer(text)]
    headings = [
        h for h in HEADING.finditer(text) if not any(a <= h.start() < b for a, b in in_code)
    ]
    for index, heading in enumerate(headings):
        if slug(heading.group(2)) == anchor:
            level = len(heading.group(1))
            end = next(
                (h.start() for h in headings[index + 1 :] if len(h.group(1)) <= level), len(text)
            )
            return text[heading.start() : end]
    raise ValueError(f"{where} has no section #{anchor}")


def shift_headings(text: str, levels: int) -> str:
    """``text`` with every heading (outside code) ``levels`` deeper."""
    if not levels:
        return text
    return _outside_code(
        text,
        lambda part: HEADING.sub(
            lambda h: "#" * min(6, len(h.group(1)) + levels) + " " + h.group(2), part
        ),
    )


def rewrite_links(
    text: str, source_dir: str, page_src: str, included: str | None, root: Path
) -> str:
    """Relative links of ``text`` (written in ``source_dir``) as seen from ``page_src``.

    ``included`` is the repository file ``text`` comes from (``None``: the page itself);
    its bare ``#anchor`` links then point at that file's page when it is another one.
    A link to a file missing from the repository (``root``) is left for MkDocs to report.
    """
    page_dir = posixpath.dirname(page_src)

    def link(found: re.Match[str]) -> str:
        target = found.group("target")
        if "://" in target or target.startswith(("mailto:", "/")):
            return found.group(0)
        path, _, anchor = target.partition("#")
        anchor = f"#{anchor}" if anchor else ""
        if not path:
            if included is None:
                return found.group(0)
            repo_path = included
        else:
            repo_path = _repo_path(source_dir, path)
            if not (root / repo_path).exists():
                return found.group(0)
        if repo_path.startswith("docs/"):
            docs_path = repo_path.removeprefix("docs/")
        elif repo_path in _PAGES:
            docs_path = _PAGES[repo_path]
        elif found.group("bang"):
            raise ValueError(f"{page_src}: the image {target} lies outside docs/")
        else:
            shown = found.group("text")
            return shown if repo_path in shown else f"{shown} (`{repo_path}`)"
        if docs_path == page_src:
            return f"{found.group('bang')}[{found.group('text')}]({anchor or '#'})"
        relative = posixpath.relpath(docs_path, page_dir or ".")
        return f"{found.group('bang')}[{found.group('text')}]({relative}{anchor})"

    return _outside_code(text, lambda part: LINK.sub(link, part))
