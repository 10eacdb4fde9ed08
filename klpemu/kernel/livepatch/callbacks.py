"""The object callbacks (kernel/livepatch/core.h): when each runs is the core's business; these
keep the one rule they share, that post_unpatch runs only after a pre_patch that said yes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .guestcall import CallbackGen, as_int

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ...machine.types import Pointer


def pre_patch(m: Machine, obj: Pointer) -> CallbackGen:
    cb = obj.callbacks
    ret = 0
    if cb.pre_patch:
        ret = as_int((yield cb.pre_patch, obj) or 0)
    cb.post_unpatch_enabled = int(ret == 0)
    return ret


def post_patch(m: Machine, obj: Pointer) -> CallbackGen:
    cb = obj.callbacks
    if cb.post_patch:
        yield cb.post_patch, obj
    return 0


def pre_unpatch(m: Machine, obj: Pointer) -> CallbackGen:
    cb = obj.callbacks
    if cb.pre_unpatch:
        yield cb.pre_unpatch, obj
    return 0


def post_unpatch(m: Machine, obj: Pointer) -> CallbackGen:
    cb = obj.callbacks
    if cb.post_unpatch_enabled and cb.post_unpatch:
        yield cb.post_unpatch, obj
    cb.post_unpatch_enabled = 0
    return 0
