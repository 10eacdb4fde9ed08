"""ftrace_graph_ret_addr for the host's unwinder (kernel/trace/fgraph.c): where function_graph put
return_to_handler in a return slot, the real return address is in the task's ret_stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...machine.machine import Machine


def ftrace_graph_ret_addr(m: Machine, task: int, retp: int) -> int | None:
    """The return address function_graph replaced at stack slot retp of task, or None when its
    ret_stack holds no entry for that slot."""
    t = m.struct("task_struct", task)
    stack = t.ret_stack
    for i in range(min(int(t.curr_ret_stack), len(stack)) - 1, -1, -1):
        entry = stack[i]
        if entry.retp == retp:
            return int(entry.ret)
    return None
