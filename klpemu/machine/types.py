"""Guest types from the image's DWARF: struct layouts, enums, globals, and typed objects.

The host never hard-codes an offset: it asks this module where `task_struct.patch_state`
lives, the way drgn reads a live kernel. The objects have drgn's shape: a pointer member keeps
its type (`Pointer`, which is also the int it holds, so it can be a dict key or printed with
`%x`), `->` is attribute access on the pointer, and `container_of`/`list_for_each_entry` take
their offsets from DWARF.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from errno import EFAULT, EINVAL
from typing import TYPE_CHECKING, Any

from ..errors import KlpemuError

if TYPE_CHECKING:
    from elftools.dwarf.die import DIE
    from elftools.dwarf.dwarfinfo import DWARFInfo

    from .memory import GuestMemory


@dataclass
class Type:
    kind: str  # base, pointer, array, struct, enum, void, func
    size: int
    name: str = ""
    signed: bool = False
    target: Type | None = None  # pointee or element
    count: int = 0  # array length
    members: dict[str, tuple[int, Type]] = field(default_factory=dict)

    def __deepcopy__(self, memo: dict) -> Type:
        return self  # read from DWARF once; copies of a machine share it (klpemu/snapshot.py)

    def member(self, name: str) -> tuple[int, Type]:
        """Offset and type of a member; `a.b` walks into nested structs."""
        found = self.members.get(name)
        if found is not None:  # the common case: one level
            return found
        offset, t = 0, self
        for part in name.split("."):
            if t.kind != "struct" or part not in t.members:
                raise KlpemuError(f"struct {t.name or '?'} has no member '{part}'", EINVAL)
            off, t = t.members[part]
            offset += off
        return offset, t


VOID = Type("void", 0, "void")


class TypeInfo:
    """All struct, enum and global-variable types of an image, read once at load."""

    def __init__(self, dwarf: DWARFInfo):
        self.structs: dict[str, Type] = {}
        self.enums: dict[str, int] = {}
        self.variables: dict[str, Type] = {}
        self._cache: dict[int, Type] = {}
        for cu in dwarf.iter_CUs():
            # Top-level DIEs only: sibling links skip function bodies, which are most of the data.
            for die in cu.get_top_DIE().iter_children():
                tag = die.tag
                if tag == "DW_TAG_structure_type" and "DW_AT_name" in die.attributes:
                    if "DW_AT_declaration" in die.attributes:
                        continue
                    name = die.attributes["DW_AT_name"].value.decode()
                    if name not in self.structs:
                        self.structs[name] = self._type(die)
                elif tag == "DW_TAG_enumeration_type":
                    self._type(die)
                elif tag == "DW_TAG_variable" and "DW_AT_name" in die.attributes and "DW_AT_type" in die.attributes:
                    name = die.attributes["DW_AT_name"].value.decode()
                    if name not in self.variables or "DW_AT_location" in die.attributes:
                        self.variables[name] = self._type(die.get_DIE_from_attribute("DW_AT_type"))

    def __deepcopy__(self, memo: dict) -> TypeInfo:
        return self  # read-only after load, like each Type

    def _type(self, die: DIE) -> Type:
        key = die.offset
        if key in self._cache:
            return self._cache[key]
        attrs = die.attributes
        tag = die.tag
        name = attrs["DW_AT_name"].value.decode() if "DW_AT_name" in attrs else ""
        size = attrs["DW_AT_byte_size"].value if "DW_AT_byte_size" in attrs else 0
        if tag == "DW_TAG_base_type":
            enc = attrs["DW_AT_encoding"].value
            t = Type("base", size, name, signed=enc in (5, 6, 13))  # DW_ATE_signed(_char)
        elif tag == "DW_TAG_pointer_type":
            t = Type("pointer", 8, name)
            self._cache[key] = t
            t.target = self._type(die.get_DIE_from_attribute("DW_AT_type")) if "DW_AT_type" in attrs else VOID
            return t
        elif tag in ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type"):
            t = self._type(die.get_DIE_from_attribute("DW_AT_type")) if "DW_AT_type" in attrs else VOID
        elif tag == "DW_TAG_structure_type" or tag == "DW_TAG_union_type":
            t = Type("struct", size, name)
            self._cache[key] = t
            if "DW_AT_declaration" in attrs and name in self.structs:
                return self.structs[name]
            for child in die.iter_children():
                if child.tag != "DW_TAG_member" or "DW_AT_name" not in child.attributes:
                    continue
                loc = child.attributes.get("DW_AT_data_member_location")
                off = loc.value if loc is not None and isinstance(loc.value, int) else 0
                t.members[child.attributes["DW_AT_name"].value.decode()] = (
                    off,
                    self._type(child.get_DIE_from_attribute("DW_AT_type")),
                )
            return t
        elif tag == "DW_TAG_array_type":
            elem = self._type(die.get_DIE_from_attribute("DW_AT_type"))
            dims = []
            for sub in die.iter_children():
                if sub.tag == "DW_TAG_subrange_type":
                    if "DW_AT_count" in sub.attributes:
                        dims.append(sub.attributes["DW_AT_count"].value)
                    elif "DW_AT_upper_bound" in sub.attributes:
                        dims.append(sub.attributes["DW_AT_upper_bound"].value + 1)
                    else:
                        dims.append(0)
            t = elem
            for n in reversed(dims or [0]):
                t = Type("array", t.size * n, "", target=t, count=n)
        elif tag == "DW_TAG_enumeration_type":
            t = Type("enum", size, name, signed=True)
            for child in die.iter_children():
                if child.tag == "DW_TAG_enumerator":
                    self.enums[child.attributes["DW_AT_name"].value.decode()] = child.attributes[
                        "DW_AT_const_value"
                    ].value
        elif tag == "DW_TAG_subroutine_type":
            t = Type("func", 0, name)
        else:
            t = VOID
        self._cache[key] = t
        return t

    def struct(self, name: str) -> Type:
        try:
            return self.structs[name]
        except KeyError:
            raise KlpemuError(f"no struct {name} in the image's debug info", EINVAL) from None

    def enum(self, name: str) -> int:
        try:
            return self.enums[name]
        except KeyError:
            raise KlpemuError(f"no enumerator {name} in the image's debug info", EINVAL) from None

    def offsetof(self, struct: str, member: str) -> int:
        return self.struct(struct).member(member)[0]

    def sizeof(self, struct: str) -> int:
        return self.struct(struct).size


def decode_scalar(t: Type, raw: bytes) -> int:
    return int.from_bytes(raw, "little", signed=t.signed and t.kind in ("base", "enum"))


class View:
    """A typed window on guest memory: `task.pid`, `task.thread.sp`, `pcpu.current_task`.

    Scalars and pointers read as ints; char arrays as bytes up to the NUL; nested structs and
    other arrays as further views. Assigning to a scalar member writes guest memory. The view's
    own address is `addr_of()`, so no member name (Linux has plenty called `addr`) is shadowed.
    """

    __slots__ = ("_mem", "_type", "_address")

    def __init__(self, mem: GuestMemory, t: Type, addr: int):
        object.__setattr__(self, "_mem", mem)
        object.__setattr__(self, "_type", t)
        object.__setattr__(self, "_address", addr)

    def __deepcopy__(self, memo: dict) -> View:
        # As a Pointer's: the memory is the copy's when a whole machine is being copied, else the
        # same. (The default would restore the slots through __setattr__, a guest memory write.)
        return View(memo.get(id(self._mem), self._mem), self._type, self._address)

    def _read(self, off: int, t: Type) -> Any:
        return _load(self._mem, t, self._address + off)

    def __getattr__(self, name: str) -> Any:
        off, t = self._type.member(name)
        return _load(self._mem, t, self._address + off)

    def __setattr__(self, name: str, value: int) -> None:
        _store(self._mem, self._type, self._address, name, value)

    def __getitem__(self, index: int) -> Any:
        t = self._type
        if t.kind != "array" or not 0 <= index < t.count or t.target is None:
            raise IndexError(index)
        return self._read(index * t.target.size, t.target)

    def __len__(self) -> int:
        return self._type.count

    def addr_of(self, member: str | None = None) -> int:
        """The address of a member, or of the whole view."""
        if member is None:
            return self._address
        return self._address + self._type.member(member)[0]

    @property
    def type(self) -> Type:
        return self._type

    def __repr__(self) -> str:
        return f"<{self._type.kind} {self._type.name or '?'} at 0x{self._address:x}>"


class Pointer(int):
    """A typed pointer into guest memory, as drgn's pointer Objects: the address it holds is
    its int value; `p.member` reads through it (C's `p->member`), `p.member = v` writes, and
    `deref()` gives the pointee as a View. A null pointer is falsy."""

    _mem: GuestMemory
    _target: Type

    def __new__(cls, mem: GuestMemory, target: Type, value: int) -> Pointer:
        self = super().__new__(cls, value)
        object.__setattr__(self, "_mem", mem)
        object.__setattr__(self, "_target", target)
        return self

    @property
    def target_type(self) -> Type:
        return self._target

    def deref(self) -> Any:
        """*p: a View of a struct or array, the value of a scalar."""
        if not self:
            raise KlpemuError(f"null dereference of a {self._target.name or self._target.kind} pointer", EFAULT)
        t = self._target
        if t.kind == "pointer":
            return Pointer(self._mem, t.target or VOID, self._mem.read_u64(int(self)))
        if t.kind in ("base", "enum"):
            return decode_scalar(t, self._mem.read(int(self), t.size))
        return View(self._mem, t, int(self))

    def addr_of(self, member: str | None = None) -> int:
        """&p->member, or the address p holds (as View.addr_of)."""
        return int(self) + (self._target.member(member)[0] if member is not None else 0)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if not self:
            self.deref()  # the null dereference error
        off, t = self._target.member(name)
        return _load(self._mem, t, int(self) + off)

    def __setattr__(self, name: str, value: int) -> None:
        if not self:
            self.deref()
        _store(self._mem, self._target, int(self), name, value)

    def __getitem__(self, index: int) -> Any:
        """p[i]: the i-th element an array pointer points at."""
        t = self._target
        return Pointer(self._mem, t, int(self) + index * t.size).deref()

    def __reduce__(self):  # pickled as the plain address it holds
        return (int, (int(self),))

    def __copy__(self) -> Pointer:
        return self

    def __deepcopy__(self, memo: dict) -> Pointer:
        # The types are the image's, shared by every copy. The memory is the copy's when a whole
        # machine is being copied (a snapshot puts its memory in the memo first), else the same.
        return Pointer(memo.get(id(self._mem), self._mem), self._target, int(self))

    def __repr__(self) -> str:
        return f"({self._target.name or self._target.kind} *)0x{int(self):x}"

    def __str__(self) -> str:  # printed as the number, like any int
        return int.__repr__(self)


def _load(mem: GuestMemory, t: Type, addr: int) -> Any:
    """The value of type t at addr: an int, a Pointer, the bytes of a string, or a View."""
    kind = t.kind
    if kind == "base" or kind == "enum":
        return int.from_bytes(mem.read(addr, t.size), "little", signed=t.signed)
    if kind == "pointer":
        return Pointer(mem, t.target or VOID, mem.read_u64(addr))
    if kind == "array" and t.target and t.target.kind == "base" and t.target.size == 1:
        return mem.read(addr, t.size).split(b"\0", 1)[0]
    return View(mem, t, addr)


def _store(mem: GuestMemory, struct: Type, addr: int, name: str, value: int) -> None:
    off, t = struct.member(name)
    if t.kind not in ("base", "enum", "pointer"):
        raise KlpemuError(f"cannot assign to non-scalar member {name}", EINVAL)
    value = int(value)
    bits = t.size * 8
    # Either reading of the bits (signed or not) is accepted, as C accepts -1 for an unsigned;
    # a value that fits neither is refused, not truncated behind the writer's back.
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise KlpemuError(f"{value} does not fit in {name} ({t.name or t.kind}, {t.size} bytes)", EINVAL)
    mem.write(addr + off, value.to_bytes(t.size, "little", signed=value < 0))


def offsetof(t: Type, member: str) -> int:
    return t.member(member)[0]


def container_of(ptr: int, mem: GuestMemory, t: Type, member: str) -> Pointer:
    """The struct of type t whose `member` is at ptr (include/linux/container_of.h)."""
    return Pointer(mem, t, int(ptr) - offsetof(t, member))


def list_for_each_entry(mem: GuestMemory, t: Type, head: int, member: str, limit: int = 1 << 16) -> Iterator[Pointer]:
    """The entries of a guest list, head not included (include/linux/list.h); `limit` bounds a
    list that a guest bug left circular without its head."""
    off = offsetof(t, member)
    node = mem.read_u64(head)
    while node != head and limit:
        yield Pointer(mem, t, node - off)
        node = mem.read_u64(node)
        limit -= 1
