"""The Runtime API's command table: each command's words, the usage and help line HAProxy 2.6
prints for it, and the function that answers. The session commands (``prompt``, ``quit``,
``set timeout``, ``operator``, ``user``, ``show cli level``) belong to ``session.py``.

Rules:
1. The longest match of leading words wins (``show servers state`` before ``show stat``...).
2. Permission is each command's own check, as in HAProxy (some answer a user differently
   rather than refuse: ``show table``, ``clear table``, ``show stat``).
3. An unknown command answers HAProxy's text: the closest commands, or all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import servers, show, tables
from .context import CommandError, Context

Handler = Callable[[Context, Sequence[str]], str]


@dataclass(frozen=True, slots=True)
class Command:
    words: tuple[str, ...]
    usage: str
    help: str
    handler: Handler | None  # None: a session command (session.py answers it)


def _cmd(words: str, usage: str, text: str, handler: Handler | None) -> Command:
    return Command(tuple(words.split()), usage, text, handler)


COMMANDS: tuple[Command, ...] = (
    _cmd("clear table", "clear table <table> [<filter>]*",
         "remove an entry from a table (filter: data/key)", tables.clear_table),
    _cmd("disable frontend", "disable frontend <frontend>", "temporarily disable specific "
         "frontend", servers.disable_frontend),
    _cmd("disable server", "disable server (DEPRECATED)", "disable a server for maintenance "
         "(use 'set server' instead)", servers.disable_server),
    _cmd("enable frontend", "enable frontend <frontend>", "re-enable specific frontend",
         servers.enable_frontend),
    _cmd("enable server", "enable server  (DEPRECATED)", "enable a disabled server (use 'set "
         "server' instead)", servers.enable_server),
    _cmd("get weight", "get weight <bk>/<srv>", "report a server's current weight",
         servers.get_weight),
    _cmd("operator", "operator", "lower the level of the current CLI session to operator",
         None),
    _cmd("set maxconn server", "set maxconn server <bk>/<srv>", "change a server's maxconn "
         "setting", servers.set_maxconn_server),
    _cmd("set server", "set server <bk>/<srv> [opts]", "change a server's state, weight, "
         "address or ssl", servers.set_server),
    _cmd("set table", "set table <table> key <k> [data.* <v>]*", "update or create a table "
         "entry's data", tables.set_table),
    _cmd("set timeout", "set timeout [cli] <delay>", "change a timeout setting", None),
    _cmd("set weight", "set weight <bk>/<srv>  (DEPRECATED)", "change a server's weight (use "
         "'set server' instead)", servers.set_weight),
    _cmd("show backend", "show backend", "list backends in the current running config",
         show.show_backend),
    _cmd("show cli level", "show cli level", "display the level of the current CLI session",
         None),
    _cmd("show errors", "show errors [<px>] [request|response]", "report last request and/or "
         "response errors for each proxy", show.show_errors),
    _cmd("show info", "show info [desc|json|typed|float]*", "report information about the "
         "running process", show.show_info),
    _cmd("show servers state", "show servers state [<backend>]", "dump volatile server "
         "information (all or for a single backend)", show.show_servers_state),
    _cmd("show stat", "show stat [desc|json|no-maint|typed|up]*", "report counters for each "
         "proxy and server", show.show_stat),
    _cmd("show table", "show table <table> [<filter>]*", "report table usage stats or dump "
         "this table's contents (filter: data/key)", tables.show_table),
    _cmd("shutdown sessions server", "shutdown sessions server <bk>/<srv>", "kill sessions on "
         "a server", servers.shutdown_sessions),
    _cmd("user", "user", "lower the level of the current CLI session to user", None),
    _cmd("help", "help [<command>]", "list matching or all commands", None),
    _cmd("prompt", "prompt", "toggle interactive mode with prompt", None),
    _cmd("quit", "quit", "disconnect", None),
)


def help_line(command: Command) -> str:
    return f"  {command.usage:<40}: {command.help}\n"


def help_text(header: str = "The following commands are valid at this level:") -> str:
    return header + "\n" + "".join(help_line(c) for c in COMMANDS)


def find(args: Sequence[str]) -> Command | None:
    """The command ``args`` start with (rule 1)."""
    best: Command | None = None
    for command in COMMANDS:
        size = len(command.words)
        if tuple(args[:size]) == command.words and (best is None or size > len(best.words)):
            best = command
    return best


def unknown(args: Sequence[str]) -> str:
    """HAProxy's answer to a command it does not know (rule 3)."""
    if args:
        near = [c for c in COMMANDS if c.words[0] == args[0] and c.handler is not None]
        if len(args) > 1:
            near = [c for c in near if len(c.words) < 2 or c.words[1] == args[1]] or near
        if near:
            tail = [c for c in COMMANDS if c.words in (("help",), ("prompt",), ("quit",))]
            return ("Unknown command, but maybe one of the following ones is a better match:\n"
                    + "".join(help_line(c) for c in near + tail))
    return help_text("Unknown command. Please enter one of the following commands only:")


def run(ctx: Context, command: Command, args: Sequence[str]) -> str:
    """The answer of one table command (``args`` after its words); HAProxy's error text when
    it refuses."""
    assert command.handler is not None
    try:
        return command.handler(ctx, args)
    except CommandError as error:
        return error.answer
