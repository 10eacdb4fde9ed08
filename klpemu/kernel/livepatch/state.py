"""System states (kernel/livepatch/state.c): the compatibility rule checked before a patch is
enabled. klp_get_state and klp_get_prev_state are guest code reading the same structs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ...machine.types import Pointer


def states(m: Machine, patch: Pointer) -> list[tuple[int, int]]:
    """(id, version) of each klp_state of the patch; the array ends at id 0."""
    out = []
    addr = patch.states
    size = m.types.sizeof("klp_state")
    while addr:
        s = m.ptr("klp_state", addr)
        if not s.id:
            break
        out.append((s.id, s.version))
        addr += size
    return out


def is_patch_compatible(m: Machine, patch: Pointer, installed: list[Pointer]) -> bool:
    """klp_is_patch_compatible: every state an installed patch set up must be kept, at the same
    or a newer version, by a replacing patch; a patch that does not replace need not mention it."""
    new = dict(states(m, patch))
    replace = bool(patch.replace)
    for old_patch in installed:
        for state_id, version in states(m, old_patch):
            if state_id not in new:
                if replace:
                    return False
            elif new[state_id] < version:
                return False
    return True
