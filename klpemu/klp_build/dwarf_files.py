"""Source file names of a compilation unit's DWARF (DW_AT_decl_file numbers), as the build
recorded them (firmware/include/linux/proc_fs.h, after -ffile-prefix-map)."""

from __future__ import annotations


def cu_file_names(dwarf, cu) -> list[str]:
    """Index i is the name of decl_file i (DWARF 5 counts from 0, earlier versions from 1)."""
    lp = dwarf.line_program_for_CU(cu)
    if lp is None:
        return []
    v5 = cu.header.version >= 5
    dirs = [d.decode() if isinstance(d, bytes) else str(d) for d in lp["include_directory"]]
    if not v5:
        dirs.insert(0, "")
    names = [] if v5 else [""]
    for e in lp["file_entry"]:
        d = dirs[e.dir_index] if 0 <= e.dir_index < len(dirs) else ""
        name = e.name.decode()
        names.append(name if name.startswith("/") or not d else f"{d}/{name}")
    return names
