"""The DWARF types cache: a hit gives the parse's types, anything else in its place is parsed again."""

from __future__ import annotations

import pickle

import pytest

from klpemu.machine.type_cache import cache_path, cached_types
from klpemu.machine.types import TypeInfo


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def counted_parse(image):
    calls = []

    def parse() -> TypeInfo:
        calls.append(1)
        return TypeInfo(image.dwarf)

    return parse, calls


def describe(types: TypeInfo) -> dict:
    task = types.structs["task_struct"]
    return {
        "structs": sorted(types.structs),
        "enums": types.enums,
        "variables": sorted(types.variables),
        "task_struct": (task.size, [(name, offset, t.kind, t.size) for name, (offset, t) in task.members.items()]),
    }


def test_the_second_load_comes_from_the_cache_and_equals_the_parse(image, cache_home, counted_parse):
    parse, calls = counted_parse
    first = cached_types(image.raw, parse)
    assert cache_path(image.raw).parent == cache_home / "klpemu" and cache_path(image.raw).exists()
    second = cached_types(image.raw, parse)
    assert len(calls) == 1
    assert second is not first and describe(second) == describe(first)


@pytest.mark.parametrize("damage", [b"", b"not a pickle", pickle.dumps({"structs": {}})])
def test_a_damaged_or_foreign_entry_is_parsed_again_and_replaced(image, cache_home, counted_parse, damage):
    parse, calls = counted_parse
    path = cache_path(image.raw)
    path.parent.mkdir(parents=True)
    path.write_bytes(damage)
    types = cached_types(image.raw, parse)
    assert len(calls) == 1 and "task_struct" in types.structs
    assert isinstance(pickle.loads(path.read_bytes()), TypeInfo)


def test_another_image_has_another_entry(image):
    assert cache_path(image.raw) != cache_path(image.raw + b"\0")


def test_a_cache_that_cannot_be_written_only_costs_the_parse(image, tmp_path, monkeypatch, counted_parse):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where the directory should be
    parse, calls = counted_parse
    assert "task_struct" in cached_types(image.raw, parse).structs
    assert "task_struct" in cached_types(image.raw, parse).structs
    assert len(calls) == 2
