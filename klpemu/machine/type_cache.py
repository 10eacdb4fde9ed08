"""The image's DWARF types, kept in the user's cache directory: parsing them takes about 130 ms
of a 0.4 s start-up, loading the pickle about 2 ms.

Entries are keyed by the SHA-256 of the image and by the shape of the cache itself, so a
rebuilt image or a newer klpemu never reads a stale entry; an entry that does not load (cut
short, written by something else) is parsed again and replaced.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from .types import TypeInfo

# Bump when TypeInfo's pickled shape changes without a new release.
CACHE_FORMAT = 1


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "klpemu"


def cache_path(image_bytes: bytes) -> Path:
    digest = hashlib.sha256(image_bytes).hexdigest()
    return cache_dir() / f"types-{digest}-{__version__}-{CACHE_FORMAT}.pickle"


def cached_types(image_bytes: bytes, parse: Callable[[], TypeInfo]) -> TypeInfo:
    """The types of the image with these bytes: from the cache, else parse() and keep them."""
    path = cache_path(image_bytes)
    try:
        with open(path, "rb") as f:
            types = pickle.load(f)
        if isinstance(types, TypeInfo):
            return types
    except FileNotFoundError:
        pass
    except Exception:  # noqa: BLE001 - any damage to a cache entry means parse again
        pass
    types = parse()
    _store(path, types)
    return types


def _store(path: Path, types: TypeInfo) -> None:
    """Write through a temporary file and a rename, so a reader never sees half an entry; a
    cache that cannot be written only costs the parse next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".types-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(types, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass
