"""A small virtual filesystem: directories and files with Linux's modes, resolved by path.

Files are read and written through callables, so every read shows the machine's state at that
moment. Directories may be dynamic (one per task under /proc).
"""

from __future__ import annotations

import inspect
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from errno import EACCES, EEXIST, EINVAL, EISDIR, ENOENT, ENOTDIR
from typing import Protocol, TypeGuard, TypeVar

from ..errors import KlpemuError
from ..machine.kstr import as_kstr

ReadFn = Callable[[], str]
WriteFn = Callable[[str], None]


class AppendingWriteFn(Protocol):
    """A write callback that tells `>>` from `>`, as ftrace's filter files do (`>>` adds to
    the filter); any other file takes both the same way."""

    def __call__(self, data: str, /, append: bool = False) -> None: ...


def takes_append(write: WriteFn) -> TypeGuard[AppendingWriteFn]:
    try:
        return "append" in inspect.signature(write).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): it takes data alone
        return False


@dataclass
class File:
    name: str
    mode: int  # permission bits, e.g. 0o444
    read: ReadFn | None = None
    write: WriteFn | AppendingWriteFn | None = None

    @property
    def st_mode(self) -> int:
        return stat.S_IFREG | self.mode


@dataclass
class Dir:
    name: str
    mode: int = 0o555
    entries: dict[str, File | Dir] = field(default_factory=dict)
    dynamic: Callable[[], Mapping[str, File | Dir]] | None = None
    # A directory whose subdirectories the kernel makes and removes (tracefs' instances/)
    on_mkdir: Callable[[str], Dir] | None = None
    on_rmdir: Callable[[str], None] | None = None

    @property
    def st_mode(self) -> int:
        return stat.S_IFDIR | self.mode

    def children(self) -> dict[str, File | Dir]:
        out = dict(self.entries)
        if self.dynamic is not None:
            out.update(self.dynamic())
        return out

    def add(self, node: N) -> N:
        self.entries[node.name] = node
        return node

    def mkdir(self, name: str, mode: int = 0o555) -> Dir:
        existing = self.entries.get(name)
        if isinstance(existing, Dir):
            return existing
        return self.add(Dir(name, mode))


Node = File | Dir
N = TypeVar("N", bound=Node)


def split(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


class VFS:
    def __init__(self) -> None:
        self.root = Dir("")

    def makedirs(self, path: str, mode: int = 0o555) -> Dir:
        d = self.root
        for part in split(path):
            d = d.mkdir(part, mode)
        return d

    def add_file(self, path: str, node: File) -> None:
        parts = split(path)
        self.makedirs("/".join(parts[:-1])).add(node)

    def lookup(self, path: str) -> Node:
        if not path.startswith("/"):
            raise KlpemuError(f"{path}: paths are absolute here", EINVAL)
        path = as_kstr(path)  # typed raw bytes find the entries named by kstr from guest bytes
        node: Node = self.root
        parts: list[str] = []
        for part in split(path):
            if part == "..":
                parts = parts[:-1]
                continue
            parts.append(part)
        for part in parts:
            if not isinstance(node, Dir):
                raise KlpemuError(path, ENOTDIR)
            child = node.children().get(part)
            if child is None:
                raise KlpemuError(path, ENOENT)
            node = child
        return node

    def exists(self, path: str) -> bool:
        try:
            self.lookup(path)
            return True
        except KlpemuError:
            return False

    def read(self, path: str) -> str:
        node = self.lookup(path)
        if isinstance(node, Dir):
            raise KlpemuError(path, EISDIR)
        if node.read is None or not node.mode & 0o444:
            raise KlpemuError(path, EACCES)
        return node.read()

    def write(self, path: str, data: str | bytes, append: bool = False) -> None:
        """Write data; append (a `>>` redirection) matters only to files that take it. Bytes are
        handed on as text whose undecodable bytes are lone surrogates, which a guest file and
        the kernel log turn back into the same bytes (kbytes)."""
        if isinstance(data, bytes):
            data = data.decode("utf-8", "surrogateescape")
        node = self.lookup(path)
        if isinstance(node, Dir):
            raise KlpemuError(path, EISDIR)
        if node.write is None or not node.mode & 0o222:
            raise KlpemuError(path, EACCES)
        if append and takes_append(node.write):
            node.write(data, append=True)
            return
        node.write(data)

    def mkdir(self, path: str) -> None:
        """mkdir(2): only where the kernel makes directories (EEXIST for a name in use)."""
        parts = split(path)
        if not parts:
            raise KlpemuError(path, EEXIST)
        parent = self.lookup("/" + "/".join(parts[:-1]))
        if not isinstance(parent, Dir):
            raise KlpemuError(path, ENOTDIR)
        if parts[-1] in parent.children():
            raise KlpemuError(path, EEXIST)
        if parent.on_mkdir is None:
            raise KlpemuError(path, EACCES)
        parent.add(parent.on_mkdir(parts[-1]))

    def rmdir(self, path: str) -> None:
        """rmdir(2): only what the kernel lets go (its errno, EBUSY for one in use, otherwise)."""
        parts = split(path)
        node = self.lookup(path)
        if not isinstance(node, Dir):
            raise KlpemuError(path, ENOTDIR)
        parent = self.lookup("/" + "/".join(parts[:-1]))
        if not isinstance(parent, Dir) or parent.on_rmdir is None:
            raise KlpemuError(path, EACCES)
        parent.on_rmdir(parts[-1])
        parent.entries.pop(parts[-1], None)

    def listdir(self, path: str) -> list[Node]:
        node = self.lookup(path)
        if not isinstance(node, Dir):
            return [node]
        return [node.children()[k] for k in sorted(node.children())]


def mode_string(node: Node) -> str:
    """`ls -l`'s first column, e.g. -r--r--r-- or dr-xr-xr-x."""
    return stat.filemode(node.st_mode)


def parse_bool01(data: str, what: str) -> bool:
    """A write of 0 or 1 to a switch file (tracing_on, options/*, enable, ftrace_enabled)."""
    value = data.strip()
    if value not in ("0", "1"):
        raise KlpemuError(f"{what} takes 0 or 1", EINVAL)
    return value == "1"
