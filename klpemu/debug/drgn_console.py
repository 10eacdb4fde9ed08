"""drgn's interactive console on the live machine (`klpemu drgn`, and `drgn` in the shell)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .kernel_program import KernelProgram

if TYPE_CHECKING:
    from ..system import System


def console_globals(system: System, defaults: dict[str, Any]) -> dict[str, Any]:
    """drgn's own globals, its list helpers (the program is not a Linux kernel to drgn, so they
    are not imported for it), and the machine itself for what drgn cannot do (write, run)."""
    from drgn import container_of
    from drgn.helpers.linux import list as list_helpers

    names = {name: getattr(list_helpers, name) for name in list_helpers.__all__}
    return {**defaults, **names, "container_of": container_of, "system": system, "machine": system.machine}


def run_drgn_console(system: System) -> int:
    import drgn.cli

    prog = KernelProgram(system).prog

    def banner(default: str) -> str:
        return (
            f"{default}\n"
            "The machine's memory, read live, with the types of the kernel image and its loaded modules. "
            "Also here: system, machine, list_for_each_entry, container_of."
        )

    drgn.cli.run_interactive(prog, banner_func=banner, globals_func=lambda g: console_globals(system, g))
    return 0
