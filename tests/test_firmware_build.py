"""The shipped kernel image: found as package data, and reproducible from firmware/ byte for byte."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

import klpemu
from klpemu.machine.image import KernelImage
from klpemu.machine.machine import shipped_image

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
IMAGES = Path(klpemu.__file__).resolve().parent / "images"


def first_line(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[0]


def make_cc() -> str:
    """The compiler `make -C firmware` runs: the Makefile's $(CC) as make resolves it here."""
    out = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "-C",
            str(FIRMWARE),
            "--eval",
            "klpemu-test-print-cc: ; @echo $(CC)",
            "klpemu-test-print-cc",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out
    return out


def test_shipped_image_is_package_data():
    path = shipped_image()
    assert path.is_file()
    assert path.resolve() == (IMAGES / "vmlinux").resolve()
    via_resources = resources.files("klpemu").joinpath("images", "vmlinux")
    assert via_resources.is_file()
    assert via_resources.read_bytes() == path.read_bytes()
    assert path.read_bytes()[:4] == b"\x7fELF"
    image = KernelImage(path)
    assert image.has("start_kernel") and image.mcount_loc


def test_shipped_image_records_its_compiler():
    text = (IMAGES / "vmlinux.gcc").read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    assert "(" in text and text.split()[-1][0].isdigit()  # `NAME (DISTRO VERSION) VERSION`
    assert resources.files("klpemu").joinpath("images", "vmlinux.gcc").is_file()


def test_makefile_builds_and_records_with_gcc():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    recorded = (IMAGES / "vmlinux.gcc").read_text().strip()
    assert recorded.split()[0] == "gcc", recorded
    assert make_cc() == "gcc"


def test_firmware_build_is_byte_identical(tmp_path):
    missing = [tool for tool in ("make", "ld") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"cannot rebuild the firmware: {', '.join(missing)} not installed")
    cc = make_cc()
    if shutil.which(cc) is None:
        pytest.skip(f"cannot rebuild the firmware: its compiler {cc!r} is not installed")
    recorded = (IMAGES / "vmlinux.gcc").read_text().strip()
    # make runs $(CC) (see test_makefile_builds_and_records_with_gcc); compare what it prints.
    have = first_line([cc, "--version"])
    if have != recorded:
        pytest.skip(f"the image was built by {recorded!r}; this host's {cc} is {have!r}")
    out = tmp_path / "build"
    res = subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE), f"O={out}", "-j4"], check=False, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    built = (out / "vmlinux").read_bytes()
    shipped = shipped_image().read_bytes()
    assert len(built) == len(shipped)
    assert built == shipped, "rebuilt vmlinux differs from klpemu/images/vmlinux"
