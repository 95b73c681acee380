"""The converter table: ``,lower``, ``,map(FILE)``, ``,regsub(RE,SUBST,g)``... with HAProxy 2.6's
meaning (pure).

Rules (configuration manual 7.3.1):
1. One entry per converter name: its argument signature (``calls.py``) and ``make``, which turns
   checked arguments into a closure ``(value, txn) -> value | None`` once, at start-up. A
   converter whose input cannot be cast to the type it works on yields no sample.
2. ``word(N,DELIMS[,COUNT])`` skips empty words, ``field(N,DELIMS[,COUNT])`` counts them;
   negative indexes count from the end; COUNT 0 means every word from N on.
3. Maps (``map``, ``map_<match>[_<output>]``): ``str`` and ``int`` keys are looked up
   exactly, ``ip`` keys by the longest matching network, the others (``beg``, ``sub``,
   ``end``, ``dir``, ``dom``, ``reg``, ``regm``, ``len``) by the first matching line in file
   order; a miss gives the default argument, else no sample. ``map_regm`` substitutes the
   regex's groups (``\\1``) in the value.
4. Arithmetic converters take an integer or a variable name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Final

from geoproxy.balance import hashfuncs
from geoproxy.rules.calls import arg_int
from geoproxy.rules.maps import MAP_MATCHES, MAP_OUTPUTS, backrefs, map_check, map_converter
from geoproxy.rules.spec import ArgValue
from geoproxy.rules.txn import Txn
from geoproxy.rules.values import to_bool, to_bytes, to_int, to_ip, to_str

Convert = Callable[[object, Txn], object]
Args = tuple[ArgValue, ...]


@dataclass(frozen=True, slots=True)
class ConverterDef:
    """One converter (rule 1); ``output`` is its result's type ("same": its input's), which
    picks the default matching method of an ACL that ends with it."""

    signature: str
    make: Callable[[Args], Convert]
    output: str = "str"
    # checks the arguments at load time beyond the signature (raises RuleError)
    check: Callable[[Args], None] | None = None


def _str_op(operation: Callable[[str], object]) -> Callable[[Args], Convert]:
    def made(args: Args) -> Convert:
        def convert(value: object, txn: Txn) -> object:
            text = to_str(value)
            return None if text is None else operation(text)

        return convert

    return made


def _words(args: Args, keep_empty: bool) -> Convert:
    index = arg_int(args[0])
    delimiters = str(args[1]) if len(args) > 1 else " "
    count = arg_int(args[2]) if len(args) > 2 else 1
    pattern = re.compile("[" + re.escape(delimiters) + "]")

    def convert(value: object, txn: Txn) -> object:
        text = to_str(value)
        if text is None or index == 0:
            return None
        parts = pattern.split(text)
        if not keep_empty:
            parts = [p for p in parts if p]
        position = index - 1 if index > 0 else len(parts) + index
        if not 0 <= position < len(parts):
            return None
        if count == 0:
            chosen = parts[position:] if index > 0 else parts[: position + 1]
        elif index > 0:
            chosen = parts[position : position + count]
        else:
            chosen = parts[max(position - count + 1, 0) : position + 1]
        joiner = delimiters[0] if delimiters else ""
        return joiner.join(chosen)

    return convert


def _regsub(args: Args) -> Convert:
    flags = str(args[2]) if len(args) > 2 else ""
    regex = re.compile(str(args[0]), re.IGNORECASE if "i" in flags else 0)
    replacement = backrefs(str(args[1]))
    count = 0 if "g" in flags else 1

    def convert(value: object, txn: Txn) -> object:
        text = to_str(value)
        return None if text is None else regex.sub(replacement, text, count=count)

    return convert


# -- arithmetic (rule 4) ----------------------------------------------------------------------


def _arith(operation: Callable[[int, int], int | None]) -> Callable[[Args], Convert]:
    def made(args: Args) -> Convert:
        argument = args[0]
        if isinstance(argument, int) or re.fullmatch(r"[-+]?\d+", str(argument)):
            constant = int(argument)  # type: ignore[arg-type]

            def with_constant(value: object, txn: Txn) -> object:
                number = to_int(value)
                return None if number is None else operation(number, constant)

            return with_constant
        name = str(argument)

        def with_variable(value: object, txn: Txn) -> object:
            number, other = to_int(value), to_int(txn.get_var(name))
            return None if number is None or other is None else operation(number, other)

        return with_variable

    return made


def _int_op(operation: Callable[[int], object]) -> Callable[[Args], Convert]:
    def made(args: Args) -> Convert:
        return lambda value, txn: None if (n := to_int(value)) is None else operation(n)

    return made


def _div(a: int, b: int) -> int | None:
    if b == 0:
        return None
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


def _mod(a: int, b: int) -> int | None:
    return None if b == 0 else a - b * _div(a, b)  # type: ignore[operator]


# -- others -------------------------------------------------------------------------------------


def _iif(args: Args) -> Convert:
    when_true, when_false = str(args[0]), str(args[1])
    return lambda value, txn: when_true if to_bool(value) else when_false


def _concat(args: Args) -> Convert:
    start = str(args[0]) if args else ""
    variable = str(args[1]) if len(args) > 1 else ""
    end = str(args[2]) if len(args) > 2 else ""

    def convert(value: object, txn: Txn) -> object:
        text = to_str(value)
        if text is None:
            return None
        middle = to_str(txn.get_var(variable)) or "" if variable else ""
        return text + start + middle + end

    return convert


def _set_var(args: Args) -> Convert:
    name = str(args[0])

    def convert(value: object, txn: Txn) -> object:
        txn.set_var(name, value)
        return value

    return convert


def _ipmask(args: Args) -> Convert:
    mask4 = str(args[0])
    mask6 = str(args[1]) if len(args) > 1 else "128"

    def convert(value: object, txn: Txn) -> object:
        address = to_ip(value)
        if address is None:
            return None
        mask = mask4 if address.version == 4 else mask6
        return ipaddress.ip_network(f"{address}/{mask}", strict=False).network_address

    return convert


def _http_date(args: Args) -> Convert:
    offset = arg_int(args[0]) if args else 0
    unit = str(args[1]) if len(args) > 1 else "s"
    scale = {"s": 1, "ms": 1000, "us": 1_000_000}.get(unit, 1)
    return lambda value, txn: None if (n := to_int(value)) is None else formatdate(
        n / scale + offset, usegmt=True)


def _hash(function: Callable[[bytes], int]) -> Callable[[Args], Convert]:
    def made(args: Args) -> Convert:
        avalanche = bool(args and arg_int(args[0]))

        def convert(value: object, txn: Txn) -> object:
            data = to_bytes(value)
            if data is None:
                return None
            number = function(data)
            return hashfuncs.full_hash(number) if avalanche else number

        return convert

    return made


def _digest(algorithm: str) -> Callable[[Args], Convert]:
    def made(args: Args) -> Convert:
        name = f"sha{arg_int(args[0])}" if algorithm == "sha2" and args else (
            "sha256" if algorithm == "sha2" else algorithm)
        return lambda value, txn: None if (data := to_bytes(value)) is None else hashlib.new(
            name, data).digest()

    return made


def _b64dec(value: object, txn: Txn) -> object:
    data = to_bytes(value)
    if data is None:
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _bytes(args: Args) -> Convert:
    offset = arg_int(args[0])
    length = arg_int(args[1]) if len(args) > 1 else None

    def convert(value: object, txn: Txn) -> object:
        data = to_bytes(value)
        if data is None or offset > len(data):
            return None
        return data[offset:] if length is None else data[offset : offset + length]

    return convert


def _host_only(text: str) -> str:
    if text.startswith("["):
        return text[: text.find("]") + 1] if "]" in text else text
    return text.rpartition(":")[0] if ":" in text else text


def _port_only(text: str) -> object:
    port = text.rpartition("]")[2] if text.startswith("[") else text
    _, colon, digits = port.rpartition(":")
    return int(digits) if colon and digits.isdigit() else None


def _cut_crlf(text: str) -> str:
    ends = [i for i in (text.find("\r"), text.find("\n")) if i >= 0]
    return text[: min(ends)] if ends else text


def _ub64dec(value: object, txn: Txn) -> object:
    data = to_bytes(value)
    if data is None:
        return None
    try:
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None


def _strcmp(args: Args) -> Convert:
    name = str(args[0])

    def convert(value: object, txn: Txn) -> object:
        mine, other = to_str(value), to_str(txn.get_var(name))
        if mine is None or other is None:
            return None
        return (mine > other) - (mine < other)

    return convert


def _simple(convert: Convert) -> Callable[[Args], Convert]:
    return lambda args: convert


C = ConverterDef
CONVERTERS: Final[dict[str, ConverterDef]] = {
    "lower": C("", _str_op(str.lower)),
    "upper": C("", _str_op(str.upper)),
    "length": C("", _str_op(len), "int"),
    "ltrim": C("s", lambda args: _str_op(lambda t: t.lstrip(str(args[0])))(args)),
    "rtrim": C("s", lambda args: _str_op(lambda t: t.rstrip(str(args[0])))(args)),
    "word": C("iS|i", lambda args: _words(args, keep_empty=False)),
    "field": C("iS|i", lambda args: _words(args, keep_empty=True)),
    "regsub": C("rs|s", _regsub),
    "concat": C("|svs", _concat),
    "iif": C("ss", _iif),
    "set-var": C("v", _set_var, "same"),
    "bool": C("", _simple(lambda value, txn: to_bool(value)), "bool"),
    "not": C("", _int_op(lambda n: not n), "bool"),
    "odd": C("", _int_op(lambda n: n % 2 == 1), "bool"),
    "even": C("", _int_op(lambda n: n % 2 == 0), "bool"),
    "neg": C("", _int_op(lambda n: -n), "int"),
    "cpl": C("", _int_op(lambda n: ~n), "int"),
    "add": C("s", _arith(lambda a, b: a + b), "int"),
    "sub": C("s", _arith(lambda a, b: a - b), "int"),
    "mul": C("s", _arith(lambda a, b: a * b), "int"),
    "div": C("s", _arith(_div), "int"),
    "mod": C("s", _arith(_mod), "int"),
    "and": C("s", _arith(lambda a, b: a & b), "int"),
    "or": C("s", _arith(lambda a, b: a | b), "int"),
    "xor": C("s", _arith(lambda a, b: a ^ b), "int"),
    "ipmask": C("S|S", _ipmask, "ip"),
    "http_date": C("|is", _http_date),
    "base64": C("", _simple(lambda v, t: None if (d := to_bytes(v)) is None else
                            base64.b64encode(d).decode("ascii"))),
    "b64dec": C("", _simple(_b64dec), "bin"),
    "hex": C("", _simple(lambda v, t: None if (d := to_bytes(v)) is None else d.hex().upper())),
    "url_dec": C("|i", lambda args: _str_op(urllib.parse.unquote_plus if args and arg_int(args[0])
                                            else urllib.parse.unquote)(args)),
    "url_enc": C("|s", _str_op(lambda t: urllib.parse.quote(t, safe=""))),
    "json": C("|s", _str_op(lambda t: json.dumps(t)[1:-1])),
    "bytes": C("i|i", _bytes, "bin"),
    "sdbm": C("|i", _hash(hashfuncs.sdbm), "int"),
    "djb2": C("|i", _hash(hashfuncs.djb2), "int"),
    "wt6": C("|i", _hash(hashfuncs.wt6), "int"),
    "crc32": C("|i", _hash(hashfuncs.crc32), "int"),
    "sha1": C("", _digest("sha1"), "bin"),
    "sha2": C("|i", _digest("sha2"), "bin"),
    "host_only": C("", _str_op(_host_only)),
    "port_only": C("", _str_op(_port_only), "int"),
    "cut_crlf": C("", _str_op(_cut_crlf)),
    "ub64enc": C("", _simple(lambda v, t: None if (d := to_bytes(v)) is None else
                             base64.urlsafe_b64encode(d).decode("ascii").rstrip("="))),
    "ub64dec": C("", _simple(_ub64dec), "bin"),
    "strcmp": C("v", _strcmp, "int"),
    "debug": C("|ss", _simple(lambda value, txn: value), "same"),
    "utime": C("s|i", lambda args: _str_op(lambda t: time.strftime(str(args[0]), time.gmtime(
        int(t))))(args)),
}
for _match in MAP_MATCHES:
    for _output in MAP_OUTPUTS:
        _name = f"map_{_match}" + ("" if _output == "str" else f"_{_output}")
        CONVERTERS[_name] = C("m|s", map_converter(_match, _output), _output,
                              map_check(_match, _output))
    CONVERTERS[f"map_{_match}_str"] = C("m|s", map_converter(_match, "str"), "str",
                                        map_check(_match, "str"))
CONVERTERS["map"] = C("m|s", map_converter("str", "str"), "str", map_check("str", "str"))

REFUSED: Final[dict[str, str]] = {
    **dict.fromkeys(("in_table", "table_", "sc_"),
                    "stick counters (track-sc, sc_*, src_*) are not supported by geoproxy yet"),
    "lua.": "geoproxy does not run Lua",
}


def refused_reason(name: str) -> str | None:
    for prefix, reason in REFUSED.items():
        if name.startswith(prefix):
            return reason
    return None
