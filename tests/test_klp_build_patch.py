"""klp-build's reading of a patch: what it accepts, how old lines move, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from klpemu.klp_build.patch import PatchError, apply_patch, parse_patch

PATCHES = Path(__file__).parent / "klp_build"


def test_line_numbers_move_as_the_hunks_say():
    (fp,) = parse_patch((PATCHES / "lines-moved.patch").read_text())
    assert fp.path == "firmware/drivers/misc/lkdtm.c"
    assert [fp.new_line(n) for n in (1, 9, 11, 12, 19)] == [1, 9, 11, 14, 21]
    assert fp.changed_new_lines() == {12, 13}


def test_a_removed_line_has_no_new_number():
    (fp,) = parse_patch((PATCHES / "uptime-sympos.patch").read_text())
    assert fp.new_line(10) is None  # the old return
    assert fp.new_line(11) == 12


@pytest.mark.parametrize(
    "text, message",
    [
        ("hello\n", "p: no file changes found (expected a patch in git diff form)"),
        ("--- a/x.c\n+++ x.c\n", "p: x.c: expected a b/ path (a patch in git diff form)"),
        ("--- a/x.c\n+++ b/x.c\n@@ -1,2 +1,2 @@\n a\n", "p: x.c: truncated hunk at line 1"),
        ("--- a/x.c\n+++ /dev/null\n", "p: a/x.c: removing a file is not supported"),
    ],
)
def test_malformed_patches_are_refused_with_the_file(text, message):
    with pytest.raises(PatchError) as e:
        parse_patch(text, "p")
    assert str(e.value) == message


def test_a_patch_applies_all_its_files_or_none(tmp_path):
    (tmp_path / "a.c").write_text("one\ntwo\n")
    (tmp_path / "b.c").write_text("three\n")
    text = "--- a/a.c\n+++ b/a.c\n@@ -1,2 +1,2 @@\n one\n-two\n+TWO\n--- a/b.c\n+++ b/b.c\n@@ -1 +1 @@\n-four\n+FOUR\n"
    with pytest.raises(PatchError, match="p: b.c: hunk at line 1 does not apply"):
        apply_patch(parse_patch(text, "p"), tmp_path, "p")
    assert (tmp_path / "a.c").read_text() == "one\ntwo\n"
    apply_patch(parse_patch(text.replace("-four", "-three"), "p"), tmp_path, "p")
    assert (tmp_path / "a.c").read_text() == "one\nTWO\n"
    assert (tmp_path / "b.c").read_text() == "FOUR\n"
