"""Loadable modules: the loader, the module list, relocations, parameters and kallsyms (kernel/module/)."""

from .internal import KlpInfo, Module, ModuleError
from .kmod import is_host_file, mod_strerror, shipped_module, shipped_modules_dir
from .main import Modules
from .params import Param
from .relocations import Relocs, apply_relocate_add, clear_relocate_add

__all__ = [
    "KlpInfo",
    "is_host_file",
    "Module",
    "ModuleError",
    "Modules",
    "Param",
    "Relocs",
    "apply_relocate_add",
    "clear_relocate_add",
    "mod_strerror",
    "shipped_module",
    "shipped_modules_dir",
]
