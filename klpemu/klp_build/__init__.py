"""klp-build: from a source patch to a livepatch module (after Linux's scripts/livepatch/klp-build).

patch.py applies the patch, trees.py builds the original and the patched tree, objdiff.py
compares them function by function, inline.py says why a function changed through an inline
helper (dwarf_files.py names DWARF's source files for it and for refuse.py), refuse.py refuses
what a livepatch cannot do, module.py generates and builds the module, build.py runs the steps
and command.py is `klpemu klp-build`. firmware is a link to the tree's firmware/, which the
package ships as files.
"""

from .build import Result, klp_build

__all__ = ["Result", "klp_build"]
