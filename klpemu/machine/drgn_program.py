"""drgn on the live machine: a drgn.Program whose memory is the guest's and whose types are the
image's DWARF, for what a person types (drgn's own helpers and its C-like expressions).

The control plane keeps its own typed layer (types.py), which writes as well as reads; drgn only
reads. drgn is an optional dependency: `pip install 'klpemu[drgn]'`.
"""

from __future__ import annotations

from errno import ENOSYS
from typing import TYPE_CHECKING

from ..errors import KlpemuError
from .heap import DATA_MAX

if TYPE_CHECKING:
    import drgn

    from .machine import Machine


def drgn_program(machine: Machine) -> drgn.Program:
    """A Program reading the machine's memory by virtual address, live: each read goes to the
    guest as it is now, so one Program serves for the machine's whole life.

    The image has no build ID, so drgn's load_debug_info would ignore it; it goes in as an extra
    module's file, taken with force=True. drgn biases the file by the module's first address minus
    the file's lowest one, so the module's range starts at the image's lowest segment (its user
    part), or function addresses come out shifted."""
    try:
        import drgn
    except ImportError:
        raise KlpemuError("drgn is not installed: pip install 'klpemu[drgn]'", ENOSYS) from None

    platform = drgn.Platform(
        drgn.Architecture.X86_64, drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN
    )
    prog = drgn.Program(platform)
    mem = machine.mem

    def read(address: int, count: int, _offset: int, _physical: bool) -> bytes:
        try:
            return mem.read(address, count)
        except KlpemuError:
            raise drgn.FaultError("guest address is not mapped", address) from None

    image = machine.image
    heap = machine.heap
    regions = [(s.vaddr, s.memsz) for s in image.segments]
    regions += [(r.base, r.size) for r in (heap.text, heap.module_data)]
    regions.append((heap.data.base, DATA_MAX))  # the data region grows; unmapped reads fault
    for base, size in regions:
        prog.add_memory_segment(base, size, read)
    path = str(image.path)
    module = prog.extra_module(path, create=True)
    module.address_range = (
        min(s.vaddr for s in image.segments),
        max(s.vaddr + s.memsz for s in image.segments),
    )
    module.try_file(path, force=True)
    return prog
