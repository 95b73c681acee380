"""HAProxy's Runtime API (the ``stats socket`` commands), pure: a line of text in, the answer
out, over a ``RuntimeControl`` (the fleet's shared state) given by the caller.

- ``context.py``: levels, what a command may read and change, the error type;
- ``session.py``: one connection's state (prompt mode, level, timeout) and the line protocol;
- ``commands.py``: the command table (words, level, help) and dispatch;
- ``show.py``, ``servers.py``, ``tables.py``: the answers, family by family.

The socket server lives in the runtime layer (``geoproxy/runtime/stats_socket.py``).
"""
