"""``http-errors`` sections and ``errorfiles``, read with HAProxy 2.6's meaning: lines apply
in declaration order (defaults' first), the section may follow its users, an unknown name is
an error at the ``errorfiles`` line, a listed code the section lacks a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from geoproxy.config import parse_text
from geoproxy.config.model import Config
from geoproxy.errors import ConfigError

HEAD = ("defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n"
        "    timeout server 1s\n")
FRONT = "frontend f\n    bind :80\n    default_backend b\n"


@pytest.fixture
def pages(tmp_path: Path) -> Path:
    for name in ("site503", "site404", "own503"):
        status = name[-3:]
        (tmp_path / f"{name}.http").write_bytes(
            f"HTTP/1.0 {status} X\r\nContent-Type: text/plain\r\n\r\n{name}\n".encode())
    return tmp_path


def parse(directory: Path, text: str) -> Config:
    return parse_text(text, str(directory / "t.cfg"), env={})


def bodies(config: Config, backend: str) -> dict[int, bytes]:
    found = next(b for b in config.backends if b.name == backend)
    return {page.status: page.body for page in found.errorfiles}


SECTION = ("http-errors site\n    errorfile 503 site503.http\n"
           "    errorfile 404 site404.http\n")


def test_the_last_errorfile_or_errorfiles_line_for_a_code_wins(pages: Path) -> None:
    config = parse(pages, HEAD + "    errorfiles site 503\n" + FRONT
                   + "backend b\n    errorfile 503 own503.http\n    server s 127.0.0.1:1\n"
                   + "backend c\n    errorfile 503 own503.http\n    errorfiles site\n"
                   + "    server s 127.0.0.1:1\n"
                   + "backend d\n    server s 127.0.0.1:1\n" + SECTION)
    assert bodies(config, "b") == {503: b"own503\n"}
    assert bodies(config, "c") == {503: b"site503\n", 404: b"site404\n"}
    assert bodies(config, "d") == {503: b"site503\n"}


def test_an_unknown_section_is_an_error_at_the_errorfiles_line(pages: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(pages, HEAD + FRONT + "backend b\n    errorfiles nope\n"
              "    server s 127.0.0.1:1\n" + SECTION)
    assert [str(error) for error in caught.value.errors] == [
        f"parsing [{pages / 't.cfg'}:10] : errorfiles : proxy 'b': unknown http-errors "
        "section 'nope'."]


def test_a_listed_code_the_section_lacks_is_a_warning(pages: Path) -> None:
    config = parse(pages, HEAD + FRONT + "backend b\n    errorfiles site 404 504\n"
                   "    server s 127.0.0.1:1\n" + SECTION)
    assert bodies(config, "b") == {404: b"site404\n"}
    assert any("status '504' not declared in http-errors section 'site'" in str(warning)
               for warning in config.warnings)


@pytest.mark.parametrize(("line", "message"), [
    ("errorfiles", "errorfiles : expects <name> as argument."),
    ("errorfiles site 302", "errorfiles : status code '302' not handled."),
])
def test_wrong_errorfiles_lines_are_refused(pages: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(pages, HEAD + f"    {line}\n" + FRONT + "backend b\n    server s 127.0.0.1:1\n"
              + SECTION)
    assert str(caught.value.errors[0]) == f"parsing [{pages / 't.cfg'}:6] : {message}"
