"""`consistency-model`: which consistency model the next livepatch transitions follow."""

from __future__ import annotations

from ..errors import KlpemuError
from ..machine.machine import CONSISTENCY_MODELS
from .core import Shell, UsageError, command


@command("consistency-model", "consistency-model [linux|stop_machine|lazy|immediate]")
def cmd_consistency_model(sh: Shell, args: list[str]) -> int:
    """Print the livepatch consistency model, or choose it for the patches enabled or disabled
    from now on (each transition keeps the model it began with): linux (per task, as Linux),
    stop_machine (kpatch: all at once or -EBUSY), lazy (kGraft: at kernel exit and kernel
    threads' loops, no stack checks) or immediate (everyone at once, as before Linux 4.12)."""
    lp = sh.machine.kernel.livepatch
    if not args:
        print(lp.transition.model, file=sh.out)
        return 0
    if len(args) != 1 or args[0] not in CONSISTENCY_MODELS:
        raise UsageError(f"one of {', '.join(CONSISTENCY_MODELS)}")
    try:
        lp.set_consistency_model(args[0])
    except KlpemuError as e:
        return sh.error(f"consistency-model: {e}")
    return 0
