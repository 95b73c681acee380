"""geoproxy's configuration: HAProxy's syntax in, a frozen ``Config`` out.

``load(path)`` reads a file, ``parse_text(text, path)`` a string (for tests). Both collect every
error before raising ``ConfigError(errors, warnings)``; on success the warnings travel in
``Config.warnings``. Pipeline: ``lexer`` (words) -> ``conditional`` (``.if`` blocks) ->
``sections`` (drafts, defaults inheritance, keyword tables) -> ``freeze`` (model values) ->
``validate`` (whole-config pass).

Relative paths inside the configuration (``errorfile``) are read from the directory of the
configuration file, HAProxy's ``default-path config`` behaviour; for ``parse_text`` that is the
directory of ``path`` (which need not exist unless such a path is used).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from geoproxy.config.conditional import apply_conditions
from geoproxy.config.freeze import freeze, resolvers_sections
from geoproxy.config.kw_external_check import missing_parts
from geoproxy.config.lexer import lex
from geoproxy.config.model import Config, Diagnostic, Location
from geoproxy.config.sections import SectionReader
from geoproxy.config.validate import check_drafts, validate
from geoproxy.errors import ConfigError

__all__ = ["Config", "ConfigError", "load", "parse_text"]


def load(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Read and check the configuration file at ``path``. Raises ``ConfigError`` listing every
    problem found; ``env`` replaces ``os.environ`` for ``"$VAR"`` expansion."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        # HAProxy 2.6's words for a file it cannot open
        problem = f"Cannot open configuration file/directory {path} : {exc.strerror}"
        raise ConfigError([Diagnostic(Location(path, 0), "", problem)]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        problem = f"the configuration is not UTF-8 text (byte 0x{data[exc.start]:02x})."
        raise ConfigError([Diagnostic(Location(path, line), "", problem)]) from None
    return parse_text(text, path, env)


def parse_text(text: str, path: str, env: Mapping[str, str] | None = None) -> Config:
    """Parse and check configuration ``text`` as if read from ``path``. Raises
    ``ConfigError``."""
    variables = os.environ if env is None else env
    directives, errors = lex(text, path, variables)
    directives, block_errors, warnings = apply_conditions(directives, variables)
    errors.extend(block_errors)
    config_dir = os.path.dirname(os.path.abspath(path))
    sections = SectionReader(config_dir, variables).read(directives)
    errors.extend(sections.errors)
    warnings = sorted(warnings + sections.warnings, key=lambda d: d.location.line)
    if errors:
        raise ConfigError(_in_file_order(errors), warnings)
    frontends, backends = freeze(sections.proxies)
    resolvers = resolvers_sections(sections.resolvers)
    userlists = tuple(userlist.freeze() for userlist in sections.userlists)
    config = Config(
        path,
        sections.global_.freeze(),
        frontends,
        backends,
        (),
        resolvers=resolvers,
        userlists=userlists,
    )
    whole_errors, whole_warnings = validate(config)
    whole_errors.extend(missing_parts(sections.proxies, config.global_.external_check))
    warnings.extend(check_drafts(sections.proxies))
    warnings.extend(whole_warnings)
    if whole_errors:
        raise ConfigError(_in_file_order(whole_errors), warnings)
    return Config(
        path,
        config.global_,
        frontends,
        backends,
        tuple(warnings),
        resolvers=resolvers,
        userlists=userlists,
    )


def _in_file_order(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    # lexical errors are found before section errors; report them all by line
    return sorted(diagnostics, key=lambda d: d.location.line)
