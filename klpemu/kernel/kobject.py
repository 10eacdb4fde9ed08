"""kobject names (lib/kobject.c): the names sysfs directories get from the objects they show."""

from __future__ import annotations


def kobject_name(name: str) -> str:
    """kobject_set_name_vargs: a '/' would split the sysfs path, so it becomes '!'."""
    return name.replace("/", "!")
