"""klp-build: from a source patch to a livepatch module (after Linux's scripts/livepatch/klp-build).

patch.py applies the patch, trees.py builds the original and the patched tree, objdiff.py
compares them function by function, inline.py says why a function changed through an inline
helper, refuse.py refuses what a livepatch cannot do, module.py generates and builds the module,
build.py runs the steps and command.py is `klpemu klp-build`.
"""

from .build import Result, klp_build

__all__ = ["Result", "klp_build"]
