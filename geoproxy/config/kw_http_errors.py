"""``http-errors NAME`` sections and the ``errorfiles NAME [CODE...]`` proxy keyword.

Rules (manual sections 3.8 and 4.2 ``errorfiles``; HAProxy's ``proxy_check_errors()``):
1. An ``http-errors`` section holds only ``errorfile CODE FILE`` lines, read and checked as a
   proxy's ``errorfile`` is; a later line for the same code replaces the earlier one. Two
   sections may not share a name.
2. ``errorfiles NAME`` imports every page of the section; ``errorfiles NAME CODE...`` only the
   listed codes, each of which must be one HAProxy produces (``errorfile`` rule 1).
3. ``errorfile`` and ``errorfiles`` lines are applied in the order they are declared, those
   inherited from ``defaults`` first: the last one to give a page for a code wins.
4. The section name is looked up once every section is read (a section may follow the
   proxies that use it). An unknown name is an error for each proxy using it, at the line of
   the ``errorfiles``; a listed code the section lacks is a warning, an unlisted one is
   silently skipped. A ``defaults`` section used by no proxy is not checked, as in HAProxy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from geoproxy.config.context import Line
from geoproxy.config.draft import ErrorFilesImport, ProxyDraft
from geoproxy.config.errorfile import ERRORFILE_CODES
from geoproxy.config.kw_proxy import errorfile_page
from geoproxy.config.model import Diagnostic, ErrorFile, Location


@dataclass(slots=True)
class HttpErrorsDraft:
    """One ``http-errors`` section being read: code -> page."""

    name: str
    location: Location
    pages: dict[int, ErrorFile] = field(default_factory=dict)


def parse_http_errors_line(draft: HttpErrorsDraft, line: Line) -> None:
    """A line inside an ``http-errors`` section (rule 1)."""
    if line.keyword != "errorfile":
        line.fail(f"unknown keyword '{line.keyword}' in 'http-errors' section")
    page = errorfile_page(line)
    draft.pages[page.status] = page


def parse_errorfiles(proxy: ProxyDraft, line: Line) -> None:
    """``errorfiles NAME [CODE...]`` in a proxy section (rule 2)."""
    name = line.arg(0)
    if not name:
        line.fail("errorfiles : expects <name> as argument.")
    codes: list[int] = []
    for code in line.args[1:]:
        if not code.isdigit() or int(code) not in ERRORFILE_CODES:
            line.fail(f"errorfiles : status code '{code}' not handled.")
        codes.append(int(code))
    proxy.settings.errorfiles.append(ErrorFilesImport(name, tuple(codes), line.location))


def resolve_error_pages(
    proxy: ProxyDraft, sections: Mapping[str, HttpErrorsDraft]
) -> Iterator[tuple[bool, Diagnostic]]:
    """Fill ``proxy.error_pages`` from its ``errorfile``/``errorfiles`` lines in order
    (rules 3 and 4); yields (is_error, diagnostic) for unknown sections and missing codes."""
    pages: dict[int, ErrorFile] = {}
    for source in proxy.settings.errorfiles:
        if isinstance(source, ErrorFile):
            pages[source.status] = source
            continue
        section = sections.get(source.name)
        if section is None:
            yield True, Diagnostic(source.location, "errorfiles", (
                f"errorfiles : proxy '{proxy.name}': unknown http-errors section "
                f"'{source.name}'."))
            continue
        for code in source.codes or tuple(section.pages):
            page = section.pages.get(code)
            if page is not None:
                pages[code] = page
            else:
                yield False, Diagnostic(source.location, "errorfiles", (
                    f"errorfiles : proxy '{proxy.name}' : status '{code}' not declared in "
                    f"http-errors section '{source.name}'."))
    proxy.error_pages = pages
