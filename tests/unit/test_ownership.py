"""Runtime directories owned through a locked pid file, and how the commands find a running
``geoproxy run`` (geoproxy/runtime/ownership.py, instances.py). A lock held through another
open file counts as another process's: flock(2) locks belong to open files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from geoproxy.runtime.instances import AmbiguousInstance, default_url, own_dir
from geoproxy.runtime.ownership import PidFile, holder


def test_a_claimed_pid_file_names_its_owner_and_refuses_a_second_claim(tmp_path: Path) -> None:
    path = tmp_path / "redis.pid"
    claimed = PidFile.claim(path)
    assert claimed is not None
    assert path.read_text() == f"{os.getpid()}\n"
    assert holder(path) == os.getpid()
    assert PidFile.claim(path) is None
    claimed.release()
    assert not path.exists() and holder(path) is None
    claimed.release()  # twice is harmless


def test_a_dead_owners_pid_file_is_nobodys_and_can_be_claimed_again(tmp_path: Path) -> None:
    path = tmp_path / "redis.pid"
    path.write_text("999999\n")  # left behind by a SIGKILLed owner: nobody holds the lock
    assert holder(path) is None
    claimed = PidFile.claim(path)
    assert claimed is not None and holder(path) == os.getpid()
    claimed.release()


def _instance(directory: Path, url: str) -> PidFile:
    directory.mkdir(exist_ok=True)
    (directory / "redis.url").write_text(url + "\n")
    claimed = PidFile.claim(directory / "redis.pid")
    assert claimed is not None
    return claimed


def test_the_commands_ask_the_owner_of_the_runtime_directory_first(tmp_path: Path) -> None:
    assert default_url(tmp_path) is None
    other = _instance(own_dir(tmp_path, 42), "unix:///other.sock")
    assert default_url(tmp_path) == "unix:///other.sock"  # the only one running
    owner = _instance(tmp_path, "unix:///owner.sock")
    assert default_url(tmp_path) == "unix:///owner.sock"
    owner.release()
    other.release()
    assert default_url(tmp_path) is None  # URL files of dead owners are never used


def test_several_instances_without_an_owner_are_named_and_none_is_chosen(
    tmp_path: Path,
) -> None:
    first = _instance(own_dir(tmp_path, 41), "unix:///a.sock")
    second = _instance(own_dir(tmp_path, 42), "unix:///b.sock")
    with pytest.raises(AmbiguousInstance, match=r"unix:///a\.sock.*unix:///b\.sock"):
        default_url(tmp_path)
    first.release()
    second.release()
