"""Conditional blocks: ``.if`` / ``.elif`` / ``.else`` / ``.endif`` and ``.warning`` / ``.alert``.

Rules (manual section 2.4; HAProxy's cfgcond.c):
1. Lines between a false condition and its matching ``.elif``/``.else``/``.endif`` are dropped
   before any section sees them. Blocks nest; conditions inside a dropped block are not
   evaluated.
2. A condition is the words after ``.if``/``.elif`` joined by spaces (already unquoted and
   expanded by the lexer): ``0`` or empty is false, another integer true; predicates
   ``defined(NAME)``, ``feature(NAME)``, ``streq(A,B)``, ``strneq(A,B)``,
   ``version_atleast(V)``, ``version_before(V)``; ``!``, ``&&`` (binds tighter), ``||`` and
   parentheses.
3. geoproxy answers ``version_*`` as HAProxy ``HAPROXY_VERSION`` would (the syntax it follows),
   and ``feature()`` is false for every HAProxy build feature (OPENSSL, LUA...), since geoproxy
   has none of them: a block meant for TLS-capable HAProxy builds is skipped.
4. ``.warning MSG`` becomes a warning and ``.alert MSG`` an error; ``.notice`` and ``.diag``
   are informational in HAProxy and are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from geoproxy.config.lexer import Directive
from geoproxy.config.model import Diagnostic

HAPROXY_VERSION = "2.6"
_DIRECTIVES = (".if", ".elif", ".else", ".endif", ".warning", ".alert", ".notice", ".diag")
_INTEGER = re.compile(r"[-+]?\d+")
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-(dev|pre|rc)(\d*))?")
_STAGES = {"dev": 0, "pre": 1, "rc": 2, None: 3}
_PREDICATE = re.compile(r"([a-z_]+)\(")


class ConditionError(Exception):
    """An expression HAProxy would refuse; ``position`` is 0-based in the expression."""

    def __init__(self, problem: str, position: int) -> None:
        self.problem = problem
        self.position = position
        super().__init__(problem)


@dataclass(slots=True)
class _Block:
    directive: Directive
    parent_active: bool
    taken: bool  # a branch of this block already ran (or must not run)
    active: bool
    seen_else: bool = False


def apply_conditions(directives: list[Directive], env: Mapping[str, str]
                     ) -> tuple[list[Directive], list[Diagnostic], list[Diagnostic]]:
    """The directives that remain once conditional blocks are resolved, and the errors and
    warnings the block directives produced."""
    kept: list[Directive] = []
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    stack: list[_Block] = []
    for directive in directives:
        active = not stack or stack[-1].active
        if not directive.keyword.startswith("."):
            if active:
                kept.append(directive)
            continue
        try:
            message = _block_directive(directive, stack, env, active)
        except ConditionError as exc:
            errors.append(Diagnostic(directive.location, directive.keyword, exc.problem))
            continue
        if message is not None and active:
            target = errors if directive.keyword == ".alert" else warnings
            target.append(Diagnostic(directive.location, directive.keyword, message))
    errors.extend(Diagnostic(block.directive.location, ".if", "non-terminated '.if' block.")
                  for block in stack)
    return kept, errors, warnings


def _block_directive(directive: Directive, stack: list[_Block], env: Mapping[str, str],
                     active: bool) -> str | None:
    keyword = directive.keyword
    if keyword not in _DIRECTIVES:
        raise ConditionError(f"unknown directive '{keyword}'.", 0)
    if keyword == ".if":
        # a wrong condition still opens its block (as false), so that its .endif matches
        block = _Block(directive, active, taken=True, active=False)
        stack.append(block)
        block.active = block.taken = active and _evaluate(directive, env)
        return None
    if keyword in (".warning", ".alert"):
        return f"'{keyword}' : '{' '.join(directive.args)}'."
    if keyword in (".notice", ".diag"):
        return None
    if not stack:
        raise ConditionError(f"lone '{keyword}' with no matching '.if'.", 0)
    block = stack[-1]
    if keyword == ".endif":
        stack.pop()
    elif block.seen_else:
        raise ConditionError(f"'{keyword}' after '.else' is not permitted.", 0)
    elif keyword == ".else":
        block.seen_else = True
        block.active = block.parent_active and not block.taken
        block.taken = True
    else:
        runs = block.parent_active and not block.taken
        block.active = False
        truth = runs and _evaluate(directive, env)
        block.active = truth
        block.taken = block.taken or truth
    return None


def _evaluate(directive: Directive, env: Mapping[str, str]) -> bool:
    text = " ".join(directive.args)
    parser = _Expression(text, env)
    try:
        return parser.parse()
    except ConditionError as exc:
        raise ConditionError(f"{exc.problem} in conditional expression '{text}' in "
                             f"'{directive.keyword}' at position {exc.position + 1}", 0) from None


class _Expression:
    """A recursive-descent reader of one condition (rule 2)."""

    def __init__(self, text: str, env: Mapping[str, str]) -> None:
        self.text = text
        self.env = env
        self.pos = 0

    def parse(self) -> bool:
        self._skip()
        if self.pos == len(self.text):
            return False
        value = self._or()
        self._skip()
        if self.pos < len(self.text):
            raise ConditionError(f"unexpected character '{self.text[self.pos]}' at the end",
                                 self.pos)
        return value

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def _take(self, token: str) -> bool:
        self._skip()
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def _or(self) -> bool:
        value = self._and()
        while self._take("||"):
            value = self._and() or value
        return value

    def _and(self) -> bool:
        value = self._factor()
        while self._take("&&"):
            value = self._factor() and value
        return value

    def _factor(self) -> bool:
        if self._take("!"):
            return not self._factor()
        if self._take("("):
            value = self._or()
            if not self._take(")"):
                raise ConditionError("missing closing parenthesis", self.pos)
            return value
        self._skip()
        integer = _INTEGER.match(self.text, self.pos)
        if integer:
            self.pos = integer.end()
            return int(integer.group()) != 0
        return self._predicate()

    def _predicate(self) -> bool:
        start = self.pos
        match = _PREDICATE.match(self.text, self.pos)
        if match is None or match.group(1) not in _PREDICATES:
            raise ConditionError("unparsable term", start)
        name = match.group(1)
        end = self.text.find(")", match.end())
        if end < 0:
            raise ConditionError(f"missing closing parenthesis after predicate '{name}'", start)
        args = [a.strip().strip("\"'") for a in self.text[match.end():end].split(",")]
        arity = _PREDICATES[name]
        if len([a for a in args if a]) < arity and not (name in ("streq", "strneq") and
                                                         len(args) == 2):
            raise ConditionError(f"predicate '{name}' expects {arity} argument(s)", start)
        self.pos = end + 1
        return _run(name, args, self.env)


_PREDICATES = {"defined": 1, "feature": 1, "streq": 2, "strneq": 2, "version_atleast": 1,
               "version_before": 1}


def _run(name: str, args: list[str], env: Mapping[str, str]) -> bool:
    if name == "defined":
        return args[0] in env
    if name == "feature":
        return False
    if name in ("streq", "strneq"):
        return (args[0] == args[1]) == (name == "streq")
    wanted = _version_key(args[0])
    current = _version_key(HAPROXY_VERSION)
    return current >= wanted if name == "version_atleast" else current < wanted


def _version_key(text: str) -> tuple[int, int, int, int, int]:
    match = _VERSION.match(text)
    if match is None:
        raise ConditionError(f"invalid version '{text}'", 0)
    major, minor, patch, stage, number = match.groups()
    return (int(major), int(minor or 0), int(patch or 0), _STAGES[stage], int(number or 0))
