"""One Runtime API connection: HAProxy 2.6's line protocol.

Rules:
1. A line holds one or more commands separated by ``;``; words are separated by spaces or
   tabs; a backslash makes the next character literal (``\\;`` is a ``;`` inside a word).
2. Each command's answer is followed by an empty line, or, in interactive mode, by an empty
   line and the prompt ``> `` (so a command that answers nothing shows only the prompt line).
3. Without ``prompt``, the connection closes once the first line's commands are answered;
   with it, the session goes on until ``quit``, end of input, or ``set timeout cli`` seconds
   without input (``stats timeout`` by default).
4. ``operator`` and ``user`` lower the session's level, never raise it.
"""

from __future__ import annotations

from collections.abc import Sequence

from geoproxy.config.units import TimeUnit, UnitError, parse_time

from . import commands
from .context import CommandError, Context, Level

MAX_ARGS = 64


def split_commands(line: str) -> list[list[str]]:
    """The commands of one line, each a list of words (rule 1)."""
    result: list[list[str]] = []
    words: list[str] = []
    word: list[str] = []
    in_word = False
    escaped = False
    for char in line:
        if escaped:
            word.append(char)
            in_word, escaped = True, False
        elif char == "\\":
            escaped = True
        elif char in " \t":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif char == ";":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            result.append(words)
            words = []
        else:
            word.append(char)
            in_word = True
    if in_word:
        words.append("".join(word))
    result.append(words)
    return [w[:MAX_ARGS] for w in result]


class Session:
    """The state of one connection; ``timeout`` is in seconds."""

    def __init__(self, ctx: Context, level: Level, timeout: float) -> None:
        self.ctx = ctx
        self.level = level
        self.timeout = timeout
        self.prompt = False
        self.closed = False

    def handle_line(self, line: str) -> str:
        """The answer to one line of input; ``closed`` tells whether to hang up after it."""
        out: list[str] = []
        for args in split_commands(line.rstrip("\r\n")):
            if self.closed:
                break
            answer = self._one(args)
            if self.closed and answer is None:
                break
            out.append((answer or "") + ("\n> " if self.prompt else "\n"))
        if not self.prompt:
            self.closed = True
        return "".join(out)

    def _one(self, args: Sequence[str]) -> str | None:
        command = commands.find(args)
        if command is None:
            return commands.unknown(args)
        rest = args[len(command.words):]
        if command.handler is not None:
            self.ctx.level = self.level
            return commands.run(self.ctx, command, rest)
        return self._session_command(command.words, rest)

    def _session_command(self, words: tuple[str, ...], rest: Sequence[str]) -> str | None:
        if words == ("quit",):
            self.closed = True
            return None
        if words == ("prompt",):
            self.prompt = not self.prompt
            return ""
        if words == ("help",):
            return commands.help_text()
        if words == ("show", "cli", "level"):
            return f"{self.level.name.lower()}\n"
        if words in (("operator",), ("user",)):
            self.level = min(self.level, Level[words[0].upper()])
            return ""
        try:
            self.timeout = _timeout(rest)
        except CommandError as error:
            return error.answer
        return ""


def _timeout(args: Sequence[str]) -> float:
    """``set timeout cli N`` (seconds, or with HAProxy's units)."""
    if not args or args[0] != "cli":
        raise CommandError("'set timeout' only supports 'cli'.")
    if len(args) < 2 or not args[1]:
        raise CommandError("Expects an integer value.")
    try:
        seconds = parse_time(args[1], TimeUnit.S)
    except UnitError:
        raise CommandError("Invalid timeout value.") from None
    if seconds <= 0:
        raise CommandError("Invalid timeout value.")
    return seconds
