"""Safe edits of the config file's tenants: an exclusive lock, validation, then an atomic replace.

Two operators (or an operator and a deployment tool) editing at once cannot lose each other's
changes, and a running proxy never reads a half-written file.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomli_w

from tenantry.tenants.registry import Registry, RegistryError


class StoreError(RuntimeError):
    """The config file cannot be read, parsed or written; the message says which and why."""


def read_config(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StoreError(f"{path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise StoreError(f"{path}: not valid TOML ({exc})") from None


def load_registry(path: Path) -> Registry:
    """The tenants of a config file; StoreError or RegistryError if it is unusable."""
    return Registry.from_config(read_config(path))


@contextmanager
def edit_config(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the parsed file for changes; on exit validate it and replace the file atomically."""
    path = Path(path)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = read_config(path)
        yield data
        try:
            Registry.from_config(data)
        except RegistryError as exc:
            raise StoreError(f"not saved: {exc}") from None
        _atomic_write(path, tomli_w.dumps(data))


def _atomic_write(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600  # it holds credential hashes
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
