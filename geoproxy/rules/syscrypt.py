"""crypt(3) of the system's libcrypt, which is what HAProxy checks ``userlist`` passwords with.

Called through ctypes: the standard library's ``crypt`` module is deprecated (gone in Python
3.13), and the packages that replace it build from source, which would make a C compiler and
libcrypt's headers a requirement of ``make run`` on a fresh machine. libcrypt itself is on
every glibc system (Debian's libcrypt1 is essential). The reentrant ``crypt_rn`` (libxcrypt)
is used where it exists, else ``crypt_r``; each call gets its own work area, so greenlets and
threads never share one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any

# A work area large enough for either library's struct crypt_data (libxcrypt: 32 KB; the
# older glibc implementation: about 128 KB).
_WORK_AREA = 256 * 1024


class CryptUnavailable(RuntimeError):
    """The system has no libcrypt: crypt(3) hashes cannot be checked."""


def _load() -> Callable[[bytes, bytes], bytes | None]:
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    try:
        library = ctypes.CDLL(name)
    except OSError as error:
        raise CryptUnavailable(f"no libcrypt on this system ({error})") from None
    function: Any = getattr(library, "crypt_rn", None) or getattr(library, "crypt_r", None)
    if function is None:
        raise CryptUnavailable(f"{name} has neither crypt_rn nor crypt_r")
    reentrant_n = getattr(library, "crypt_rn", None) is not None
    function.restype = ctypes.c_char_p
    if reentrant_n:
        function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    else:
        function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]

    def crypt(phrase: bytes, setting: bytes) -> bytes | None:
        area = ctypes.create_string_buffer(_WORK_AREA)
        if reentrant_n:
            result: bytes | None = function(phrase, setting, area, _WORK_AREA)
        else:
            result = function(phrase, setting, area)
        return result

    return crypt


_crypt: Callable[[bytes, bytes], bytes | None] | None = None


def crypt(phrase: str, setting: str) -> str | None:
    """``phrase`` hashed with ``setting`` (a whole hash works: its salt and scheme are read from
    it), as crypt(3) does; None when the system refuses the setting (an unknown scheme)."""
    global _crypt
    if _crypt is None:
        _crypt = _load()
    result = _crypt(phrase.encode(), setting.encode())
    if not result or result.startswith(b"*"):  # libxcrypt's failure token: "*0" or "*1"
        return None
    return result.decode("ascii", "replace")
