"""Section dispatch and ``defaults`` inheritance: directives -> section drafts.

Rules (manual sections 2.1 and 4; HAProxy's ``cfg_parse_listen()``):
1. A section keyword (``global``, ``defaults``, ``frontend``, ``backend``, ``listen``,
   ``resolvers``, ``userlist``, ``http-errors``) ends the current section and opens the
   next. Other HAProxy sections (``peers``, ``cache``...) are skipped whole, with one warning
   on their first line.
2. Every proxy section inherits from the last ``defaults`` section before it, or from the one
   named by ``from NAME`` (HAProxy 2.4+). A ``defaults`` section starts from HAProxy's built-in
   defaults, or from ``from NAME``. A defaults section used both by name and implicitly gets
   HAProxy's warning.
3. Frontend names and backend names are two namespaces; a ``listen`` takes its name in both.
   Names use letters, digits and ``_.:-``.
4. ``no`` and ``default`` prefix only ``option`` and ``log``.
5. Once every section is read, each proxy's ``errorfile``/``errorfiles`` lines are resolved
   against the ``http-errors`` sections (``kw_http_errors`` rules 3 and 4).
6. Every error is collected; a section whose first line is wrong is still read (into a draft
   that is then dropped) so that the errors in its body are reported too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from geoproxy.config.context import Keyword, Line, LineError, suggestion
from geoproxy.config.draft import ProxyDraft, ProxyKind
from geoproxy.config.ignored import (
    GLOBAL_REFUSED,
    PROXY_IGNORED,
    PROXY_REFUSED,
    global_ignored_reason,
)
from geoproxy.config.keywords import PREFIXABLE, PROXY_KEYWORDS
from geoproxy.config.kw_global import GLOBAL_KEYWORDS, GlobalDraft
from geoproxy.config.kw_http_errors import (
    HttpErrorsDraft,
    parse_http_errors_line,
    resolve_error_pages,
)
from geoproxy.config.kw_proxy import check_name
from geoproxy.config.kw_resolve import ResolversDraft, parse_resolvers_line
from geoproxy.config.kw_userlist import UserlistDraft, parse_userlist_line
from geoproxy.config.lexer import SECTION_KEYWORDS, Directive
from geoproxy.config.model import Diagnostic

_PROXY_KINDS = {kind.value: kind for kind in ProxyKind}
_TWO_WORD_KEYWORDS = frozenset({"stats", "capture", "compression", "email-alert", "rate-limit",
                                "declare"})


@dataclass(slots=True)
class _Skipped:
    """An HAProxy section geoproxy does not read (``peers``, ``userlist``...)."""

    keyword: str


@dataclass(slots=True)
class SectionResult:
    """Every section read, in file order (defaults sections are not kept)."""

    global_: GlobalDraft
    proxies: list[ProxyDraft]
    errors: list[Diagnostic]
    warnings: list[Diagnostic]
    resolvers: list[ResolversDraft] = field(default_factory=list)
    userlists: list[UserlistDraft] = field(default_factory=list)


@dataclass(slots=True)
class SectionReader:
    """Feeds directives one by one to the section they belong to (see the module rules)."""

    config_dir: str
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    global_: GlobalDraft = field(default_factory=GlobalDraft)
    proxies: list[ProxyDraft] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    current: (GlobalDraft | ProxyDraft | ResolversDraft | UserlistDraft | HttpErrorsDraft
              | _Skipped | None) = None
    resolvers: dict[str, ResolversDraft] = field(default_factory=dict)
    userlists: dict[str, UserlistDraft] = field(default_factory=dict)
    http_errors: dict[str, HttpErrorsDraft] = field(default_factory=dict)
    last_defaults: ProxyDraft | None = None
    defaults: list[ProxyDraft] = field(default_factory=list)
    frontends: dict[str, ProxyDraft] = field(default_factory=dict)
    backends: dict[str, ProxyDraft] = field(default_factory=dict)

    def read(self, directives: list[Directive]) -> SectionResult:
        for directive in directives:
            line = Line(directive, self.config_dir, self.warnings, env=self.env,
                        tls=self.global_.tls)
            try:
                if line.keyword in ("no", "default") and isinstance(self.current, ProxyDraft):
                    # errors then name the real keyword: 'option', not 'no'
                    line = self._strip_prefix(line)
                self._feed(line)
            except LineError as exc:
                self.errors.append(line.diagnostic(exc.message))
        for userlist in self.userlists.values():
            for location, message in userlist.undeclared_groups():
                self.errors.append(Diagnostic(location, "user", message))
        for proxy in self.proxies:
            for is_error, diagnostic in resolve_error_pages(proxy, self.http_errors):
                (self.errors if is_error else self.warnings).append(diagnostic)
        return SectionResult(self.global_, self.proxies, self.errors, self.warnings,
                             list(self.resolvers.values()), list(self.userlists.values()))

    def _feed(self, line: Line) -> None:
        keyword = line.keyword
        if keyword in SECTION_KEYWORDS:
            self.current = self._open(line)
            return
        current = self.current
        if current is None:
            line.fail(f"unknown keyword '{keyword}' out of section.")
        if isinstance(current, _Skipped):
            return
        if isinstance(current, ResolversDraft):
            parse_resolvers_line(current, line)
            return
        if isinstance(current, UserlistDraft):
            parse_userlist_line(current, line)
            return
        if isinstance(current, HttpErrorsDraft):
            parse_http_errors_line(current, line)
            return
        if keyword in ("no", "default"):
            self._strip_prefix(line)  # in the global section: always refused
        if isinstance(current, GlobalDraft):
            self._global_line(current, line)
        else:
            self._proxy_line(current, line)

    def _strip_prefix(self, line: Line) -> Line:
        words = line.args
        if not words or words[0] not in PREFIXABLE or isinstance(self.current, GlobalDraft):
            line.fail(f"'{line.keyword} {line.arg(0)}' : negation/default currently supported "
                      "only for options and log.")
        directive = line.directive
        stripped = Directive(directive.location, words[0], words[1:], directive.columns[1:])
        return Line(stripped, line.config_dir, line.warnings, prefix=line.keyword, env=line.env,
                    tls=line.tls)

    def _global_line(self, draft: GlobalDraft, line: Line) -> None:
        keyword = line.keyword
        spec = GLOBAL_KEYWORDS.get(keyword)
        if spec is not None:
            spec.parse(draft, line)
            return
        reason = global_ignored_reason(keyword)
        if reason is not None:
            line.warn(f"'{_shown(line)}' is ignored by geoproxy ({reason}).")
            return
        if keyword in GLOBAL_REFUSED:
            line.fail(f"'{keyword}' is not supported by geoproxy: {GLOBAL_REFUSED[keyword]}.")
        line.fail(f"unknown keyword '{keyword}' in 'global' section"
                  f"{suggestion(keyword, GLOBAL_KEYWORDS)} "
                  f"(geoproxy supports: {', '.join(GLOBAL_KEYWORDS)}).")

    def _proxy_line(self, draft: ProxyDraft, line: Line) -> None:
        keyword = line.keyword
        spec = PROXY_KEYWORDS.get(keyword)
        if spec is None:
            self._unknown_proxy_keyword(draft, line)
        elif self._fits(draft, spec, line):
            spec.parse(draft, line)

    def _fits(self, draft: ProxyDraft, spec: Keyword[ProxyDraft], line: Line) -> bool:
        keyword = line.keyword
        if draft.kind is ProxyKind.DEFAULTS:
            if not spec.in_defaults:
                line.fail(f"'{keyword}' not allowed in 'defaults' section.")
            return True
        if (spec.frontend and draft.kind.has_frontend) or (spec.backend and draft.kind.has_backend):
            return True
        missing = "frontend" if spec.frontend else "backend"
        if spec.strict:
            line.fail(f"'{keyword}' not allowed because {draft.label} has no {missing} "
                      "capability.")
        hint = " Maybe you want 'fullconn' instead ?" if keyword == "maxconn" else ""
        line.warn(f"'{keyword}' ignored because {draft.label} has no {missing} capability."
                  f"{hint}")
        return False

    def _unknown_proxy_keyword(self, draft: ProxyDraft, line: Line) -> None:
        keyword = line.keyword
        if keyword in PROXY_IGNORED:
            line.warn(f"'{_shown(line)}' is ignored by geoproxy ({PROXY_IGNORED[keyword]}).")
            return
        if keyword in PROXY_REFUSED:
            line.fail(f"'{keyword}' is not supported by geoproxy: {PROXY_REFUSED[keyword]}.")
        section = draft.kind.value
        valid = [k for k, spec in PROXY_KEYWORDS.items() if _allowed_in(spec, draft.kind)]
        line.fail(f"unknown keyword '{keyword}' in '{section}' section"
                  f"{suggestion(keyword, valid)} (geoproxy supports: {', '.join(valid)}).")

    def _open(
        self, line: Line
    ) -> GlobalDraft | ProxyDraft | ResolversDraft | UserlistDraft | HttpErrorsDraft | _Skipped:
        keyword = line.keyword
        if keyword == "global":
            self.current = self.global_
            line.at_most(0)
            return self.global_
        if keyword == "resolvers":
            return self._open_resolvers(line)
        if keyword == "userlist":
            return self._open_userlist(line)
        if keyword == "http-errors":
            return self._open_http_errors(line)
        kind = _PROXY_KINDS.get(keyword)
        if kind is None:
            line.warn(f"section '{keyword}' is ignored by geoproxy; its lines are not read.")
            return _Skipped(keyword)
        # a section with a wrong first line is still read, into a throwaway draft
        fallback = ProxyDraft(kind, line.arg(0), line.location)
        self.current = fallback
        if kind is ProxyKind.DEFAULTS:
            return self._open_defaults(line)
        return self._open_proxy(kind, line)

    def _open_resolvers(self, line: Line) -> ResolversDraft:
        name = line.arg(0)
        draft = ResolversDraft(name, line.location)
        self.current = draft  # a wrong first line still reads the body, into a throwaway
        if not name:
            line.fail("'resolvers' expects <name> as argument.")
        line.at_most(1)
        self._check_section_name("resolvers", name, line)
        other = self.resolvers.get(name)
        if other is not None:
            line.fail(f"resolvers section '{name}' has the same name as another resolvers "
                      f"section declared at {other.location}.")
        self.resolvers[name] = draft
        return draft

    def _open_userlist(self, line: Line) -> UserlistDraft | _Skipped:
        name = line.arg(0)
        self.current = _Skipped("userlist")
        if not name:
            line.fail("'userlist' expects <name> as arguments.")
        line.at_most(1)
        other = self.userlists.get(name)
        if other is not None:
            line.fail(f"parsing [{line.location}]: userlist '{name}' has the same name as "
                      f"another userlist declared at {other.location}.")
        draft = UserlistDraft(name, line.location)
        self.userlists[name] = draft
        return draft

    def _open_http_errors(self, line: Line) -> HttpErrorsDraft:
        name = line.arg(0)
        draft = HttpErrorsDraft(name, line.location)
        self.current = draft  # a wrong first line still reads the body, into a throwaway
        if not name:
            line.fail("missing name for http-errors section.")
        if len(line.args) > 1:  # HAProxy 2.6 ignores them silently
            line.warn(f"'http-errors' ignores the arguments after the name "
                      f"('{' '.join(line.args[1:])}').")
        other = self.http_errors.get(name)
        if other is not None:
            line.fail(f"http-errors section '{name}' already exists (declared at "
                      f"{other.location}).")
        self.http_errors[name] = draft
        return draft

    def _open_defaults(self, line: Line) -> ProxyDraft:
        args = line.args
        if args[:1] == ("from",):
            name, parent_name = "", line.arg(1)
            line.at_most(2)
        else:
            name, parent_name = line.arg(0), ""
            if len(args) > 1 and (args[1] != "from" or not line.arg(2)):
                line.fail(f"'defaults' expects [<name>] [from <defaults>] "
                          f"(got '{' '.join(args)}').")
            parent_name = line.arg(2)
            line.at_most(3)
        if name:
            self._check_section_name("defaults", name, line)
        label = f"defaults section '{name}'" if name else "defaults section"
        parent = self._named_defaults(parent_name, label, line) if parent_name else None
        draft = (parent.inherit(ProxyKind.DEFAULTS, name, line.location) if parent
                 else ProxyDraft(ProxyKind.DEFAULTS, name, line.location))
        self.defaults.append(draft)
        self.last_defaults = draft
        return draft

    def _open_proxy(self, kind: ProxyKind, line: Line) -> ProxyDraft:
        name = line.arg(0)
        if not name:
            line.fail(f"'{kind.value}' expects an <id> argument")
        if len(line.args) > 1 and (line.arg(1) != "from" or not line.arg(2)
                                   or len(line.args) > 3):
            if kind.has_frontend:
                line.fail(f"{kind.value} '{name}' : please use the 'bind' keyword for listening "
                          "addresses.")
            line.at_most(1)
        self._check_section_name(kind.value, name, line)
        label = f"{'proxy' if kind is ProxyKind.LISTEN else kind.value} '{name}'"
        defaults: ProxyDraft | None
        if line.arg(1) == "from":
            defaults = self._named_defaults(line.arg(2), label, line)
        else:
            defaults = self._implicit_defaults(line)
        draft = (defaults.inherit(kind, name, line.location) if defaults
                 else ProxyDraft(kind, name, line.location))
        self._register(draft, line)
        return draft

    def _check_section_name(self, kind: str, name: str, line: Line) -> None:
        bad = check_name(f"'{kind}'", name)
        if bad:
            line.fail(bad)

    def _named_defaults(self, name: str, label: str, line: Line) -> ProxyDraft:
        found = [d for d in self.defaults if d.name == name]
        if not found:
            line.fail(f"defaults section '{name}' not found for {label}.")
        if len(found) > 1:
            line.fail(f"ambiguous defaults section name '{name}' referenced by {label} exists "
                      f"at least at {found[0].location} and {found[1].location}.")
        defaults = found[0]
        defaults.referenced_explicitly = True
        self._warn_mixed_use(defaults, line)
        return defaults

    def _implicit_defaults(self, line: Line) -> ProxyDraft | None:
        defaults = self.last_defaults
        if defaults is not None:
            defaults.referenced_implicitly = True
            self._warn_mixed_use(defaults, line)
        return defaults

    def _warn_mixed_use(self, defaults: ProxyDraft, line: Line) -> None:
        if defaults.referenced_explicitly and defaults.referenced_implicitly:
            line.warn(f"defaults section '{defaults.name}' (declared at {defaults.location}) is "
                      "explicitly referenced by another proxy and implicitly used here. To "
                      "avoid any ambiguity don't mix both usage. Add a last defaults section "
                      "not explicitly used or always use explicit references.")

    def _register(self, draft: ProxyDraft, line: Line) -> None:
        registries = []
        if draft.kind.has_frontend:
            registries.append(self.frontends)
        if draft.kind.has_backend:
            registries.append(self.backends)
        for registry in registries:
            other = registry.get(draft.name)
            if other is not None:
                line.fail(f"{draft.kind.value} '{draft.name}' has the same name as "
                          f"{other.label} declared at {other.location}.")
        for registry in registries:
            registry[draft.name] = draft
        self.proxies.append(draft)


def _shown(line: Line) -> str:
    """The keyword as a reader knows it: ``stats socket`` rather than ``stats``."""
    if line.keyword in _TWO_WORD_KEYWORDS and line.args:
        return f"{line.keyword} {line.arg(0)}"
    return line.keyword


def _allowed_in(spec: Keyword[ProxyDraft], kind: ProxyKind) -> bool:
    if kind is ProxyKind.DEFAULTS:
        return spec.in_defaults
    return (spec.frontend and kind.has_frontend) or (spec.backend and kind.has_backend)
