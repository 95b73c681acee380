"""ACLs and conditions: ``acl NAME CRITERION [flags] PATTERN...`` and ``if|unless COND``.

Rules (manual section 7):
1. A criterion is a sample expression (``hdr(host),lower``: one fetch of the rules' fetch
   table, then converters) or one of HAProxy's derived ACL keywords, a fetch with an implied
   matching method (``path_beg`` is ``path -m beg``; ``-m`` cannot change it).
2. Flags come before the patterns: ``-i`` (ignore case), ``-m METHOD``, ``-f FILE`` (patterns
   read from a file, one per line), ``-M`` (the ``-f`` file is a map: its keys are the
   patterns), ``-n`` (no DNS: geoproxy never resolves patterns), ``-u ID`` (ignored), and
   ``--`` (end of flags). Without ``-m`` the method follows the expression's output type
   (string: ``str``, integer: ``int``, boolean: ``bool``, address: ``ip``).
3. Patterns are ORed and checked at load time (regexes, addresses, integers).
4. A condition is terms ANDed within a group, groups ORed by ``||`` or ``or``. A term is an ACL
   name or an anonymous ACL ``{ CRITERION [flags] PATTERN... }``, negated by one or more ``!``
   (glued or separate). HAProxy's predefined ACLs are known by name unless a section defines an
   ACL of the same name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from geoproxy.config.draft import ConditionDraft, TermDraft
from geoproxy.config.model import Acl, AclTest, Location
from geoproxy.rules.calls import ParseContext, RuleError, read_patterns
from geoproxy.rules.expr import output_type, parse_expr
from geoproxy.rules.fetches import DERIVED
from geoproxy.rules.matchers import METHODS, NO_PATTERN_METHODS, PatternError, check_patterns
from geoproxy.rules.spec import Call, MatchSpec, SampleExpr

NO_PATTERN_WARNING = (
    "no pattern to match against were provided, so this ACL will never match.")
_DEFAULT_METHODS = {"str": "str", "meth": "str", "int": "int", "bool": "bool", "ip": "ip",
                    "bin": "bin", "group": "group"}
_ARITY = {"-f": 1, "-M": 0, "-n": 0, "-u": 1, "-i": 0}


class AclError(Exception):
    """An ACL or a condition HAProxy would refuse; the message is HAProxy's detail text."""


@dataclass(frozen=True, slots=True)
class ParsedTest:
    """An ACL test and whether HAProxy would warn that it has no pattern."""

    test: AclTest
    no_pattern: bool


def parse_test(words: Sequence[str], context: ParseContext) -> ParsedTest:
    """Parse ``CRITERION [flags] PATTERN...``. Raises ``AclError``."""
    if not words or not words[0]:
        raise AclError("missing fetch method in ACL expression ''")
    expr, implied = _criterion(words[0], context)
    method = implied
    ignore_case, index = False, 1
    files: list[str] = []
    while index < len(words) and words[index].startswith("-"):
        flag = words[index]
        if flag == "--":
            index += 1
            break
        if flag == "-i":
            ignore_case = True
        elif flag == "-m":
            method = _match_method(words, index, words[0], implied)
            index += 1
        elif flag in ("-f", "-u"):
            if index + 1 >= len(words):
                raise AclError(f"'{flag}' expects an argument")
            if flag == "-f":
                files.append(words[index + 1])
            index += 1
        elif flag not in ("-M", "-n"):
            break  # a pattern that starts with '-'
        index += 1
    if method is None:
        method = _DEFAULT_METHODS.get(output_type(expr), "str")
    patterns = list(words[index:])
    for path in files:
        try:
            patterns.extend(_file_patterns(path, "-M" in words[:index], context))
        except RuleError as exc:
            raise AclError(str(exc)) from None
    try:
        check_patterns(method, patterns, ignore_case)
    except PatternError as exc:
        raise AclError(str(exc)) from None
    no_pattern = not patterns and method not in NO_PATTERN_METHODS and method != "group"
    test = AclTest(expr, MatchSpec(method, tuple(patterns), ignore_case))
    return ParsedTest(test, no_pattern and not files)


def _file_patterns(path: str, is_map: bool, context: ParseContext) -> list[str]:
    patterns = read_patterns(path, context)
    if is_map:
        return [p.replace("\t", " ").split()[0] for p in patterns]
    return list(patterns)


def _criterion(token: str, context: ParseContext) -> tuple[SampleExpr, str | None]:
    name = token.partition("(")[0].partition(",")[0]
    if name in DERIVED:
        fetch, method = DERIVED[name]
        rest = token[len(name):]
        try:
            expr = parse_expr(fetch + rest, context, check_side=False)
        except RuleError as exc:
            raise AclError(f"{exc} in ACL expression '{token}'") from None
        return SampleExpr(Call(fetch, expr.fetch.args), expr.converters, token), method
    try:
        return parse_expr(token, context, check_side=False), None
    except RuleError as exc:
        raise AclError(f"{exc} in ACL expression '{token}'") from None


def _match_method(words: Sequence[str], index: int, fetch: str, implied: str | None) -> str:
    if index + 1 >= len(words):
        raise AclError("'-m' expects a matching method")
    method = words[index + 1]
    if method not in METHODS:
        raise AclError(f"unknown matching method '{method}' when parsing ACL expression")
    if implied is not None:
        raise AclError(f"'-m' cannot be used with '{fetch}', which already implies its "
                       "matching method")
    return method


def _predefined(name: str, *words: str) -> Acl:
    parsed = parse_test(words, ParseContext())
    return Acl(name, (parsed.test,), Location("<predefined>", 0))


# HAProxy's predefined ACLs that geoproxy can evaluate (manual section 7.4).
PREDEFINED: dict[str, Acl] = {
    acl.name: acl
    for acl in (
        _predefined("TRUE", "always_true"),
        _predefined("FALSE", "always_false"),
        _predefined("HTTP", "req.proto_http"),  # always true in an HTTP proxy
        _predefined("WAIT_END", "wait_end"),  # tcp-request inspect-delay is over
        _predefined("REQ_CONTENT", "req.len", "gt", "0"),
        _predefined("HTTP_1.0", "req.ver", "1.0"),
        _predefined("HTTP_1.1", "req.ver", "1.1"),
        _predefined("HTTP_CONTENT", "hdr_val(content-length)", "gt", "0"),
        _predefined("HTTP_URL_ABS", "url_reg", "^[^/:]*://"),
        _predefined("HTTP_URL_SLASH", "url_beg", "/"),
        _predefined("HTTP_URL_STAR", "url", "*"),
        _predefined("LOCALHOST", "src", "127.0.0.0/8", "::1"),
        _predefined("METH_CONNECT", "method", "CONNECT"),
        _predefined("METH_DELETE", "method", "DELETE"),
        _predefined("METH_GET", "method", "GET", "HEAD"),
        _predefined("METH_HEAD", "method", "HEAD"),
        _predefined("METH_OPTIONS", "method", "OPTIONS"),
        _predefined("METH_POST", "method", "POST"),
        _predefined("METH_PUT", "method", "PUT"),
        _predefined("METH_TRACE", "method", "TRACE"),
    )
}


@dataclass(frozen=True, slots=True)
class ConditionScope:
    """What a condition may refer to: ``is_known`` says whether the section has an ACL of that
    name so far; ``warn`` receives HAProxy's warnings (an anonymous ACL without pattern)."""

    is_known: Callable[[str], bool]
    warn: Callable[[str], None]
    context: ParseContext = ParseContext()


def parse_condition(words: Sequence[str], location: Location,
                    scope: ConditionScope) -> ConditionDraft:
    """Parse ``if|unless TERMS...``: ``words[0]`` is "if" or "unless". Raises ``AclError``."""
    groups: list[tuple[TermDraft, ...]] = []
    terms: list[TermDraft] = []
    index = 1
    while index < len(words):
        word = words[index]
        if word == "||" or word.lower() == "or":
            if not terms:
                raise AclError(f"missing ACL before '{word}'")
            groups.append(tuple(terms))
            terms = []
            index += 1
            continue
        term, index = _term(words, index, location, scope)
        terms.append(term)
    if not terms:
        raise AclError(f"missing ACL after '{words[-1]}'")
    groups.append(tuple(terms))
    return ConditionDraft(words[0] == "unless", tuple(groups), location)


def _term(words: Sequence[str], index: int, location: Location,
          scope: ConditionScope) -> tuple[TermDraft, int]:
    negated = False
    word = words[index]
    while word.startswith("!"):
        negated = not negated
        word = word[1:]
        if not word:
            index += 1
            if index >= len(words):
                raise AclError("missing ACL after '!'")
            word = words[index]
    if word == "{":
        return _anonymous(words, index, location, negated, scope)
    if not scope.is_known(word) and word not in PREDEFINED:
        raise AclError(f"no such ACL : '{word}'")
    return TermDraft(word, negated), index + 1


def _anonymous(words: Sequence[str], index: int, location: Location,
               negated: bool, scope: ConditionScope) -> tuple[TermDraft, int]:
    try:
        end = list(words).index("}", index + 1)
    except ValueError:
        raise AclError("missing closing '}' in condition") from None
    inner = words[index + 1:end]
    parsed = parse_test(inner, scope.context)
    acl = Acl("{ " + " ".join(inner) + " }", (parsed.test,), location)
    if parsed.no_pattern:
        scope.warn(f"anonymous ACL '{acl.name}' : {NO_PATTERN_WARNING}")
    return TermDraft(acl.name, negated, acl), end + 1
