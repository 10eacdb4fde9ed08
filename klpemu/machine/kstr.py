"""Guest strings on the host. The kernel's strings are bytes and need not be UTF-8; the host
shows them as text without ever failing, and sends text to the guest byte for byte."""

from __future__ import annotations


def kstr(raw: bytes) -> str:
    """Guest bytes as host text: UTF-8, and each byte that is not as `\\xNN`, as dmesg shows
    them. Total, and safe to print anywhere."""
    return raw.decode("utf-8", "backslashreplace")


def kbytes(text: str | bytes) -> bytes:
    """Host text as guest bytes. Bytes pass as they are; in text, the lone surrogates Python
    makes of undecodable input (a command line, a script with raw bytes: surrogateescape)
    become those bytes again, so what a person typed reaches the guest unchanged."""
    if isinstance(text, bytes):
        return text
    return text.encode("utf-8", "surrogateescape")


def as_kstr(text: str) -> str:
    """A name a person typed, as the host shows the guest's: raw bytes (lone surrogates) as \\xNN."""
    return kstr(kbytes(text))
