"""Safe edits of the config file's tenants: an exclusive lock, validation, then an atomic replace.

Two operators (or an operator and a deployment tool) editing at once cannot lose each other's
changes, and a running proxy never reads a half-written file. Edits go through tomlkit, so the
operator's comments, ordering and formatting survive everything but the entries that changed.
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

import tomlkit
from tomlkit.items import AoT, Array, InlineTable, Table
from tomlkit.toml_document import TOMLDocument

from tenantry.tenants.registry import Registry, RegistryError


class StoreError(RuntimeError):
    """The config file cannot be read, parsed or written; the message says which and why."""


def read_config(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{path}: no such file") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise StoreError(f"{path}: not valid TOML ({exc})") from None


def load_registry(path: Path) -> Registry:
    """The tenants of a config file; StoreError or RegistryError if it is unusable."""
    return Registry.from_config(read_config(path))


@contextmanager
def edit_config(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the parsed file for changes; on exit validate it and replace the file atomically.

    A missing file is created (the caller says so to the operator)."""
    path = Path(path)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        document = _read_document(path)
        if "tenants" not in document:
            document["tenants"] = tomlkit.aot()
        yield document
        _as_tables(document)
        try:
            Registry.from_config(document.unwrap())
        except RegistryError as exc:
            raise StoreError(f"not saved: {exc}") from None
        text = tomlkit.dumps(document)
        _atomic_write(path, text if text.endswith("\n") else text + "\n")


def _read_document(path: Path) -> TOMLDocument:
    try:
        return tomlkit.parse(path.read_text())
    except FileNotFoundError:
        return tomlkit.document()
    except OSError as exc:
        raise StoreError(f"{path}: cannot read it ({exc.strerror})") from None
    except tomlkit.exceptions.ParseError as exc:
        raise StoreError(f"{path}: not valid TOML ({exc})") from None


def _as_tables(container: Any) -> None:
    """Lists of tables the edits added as inline arrays become [[tables]], as an operator writes them."""
    for key, value in list(container.items()):
        if isinstance(value, Array) and value and all(isinstance(v, (dict, InlineTable)) for v in value):
            tables = tomlkit.aot()
            for element in value:
                tables.append(element.unwrap() if isinstance(element, InlineTable) else element)
            container[key] = tables
            value = tables
        if isinstance(value, AoT):
            for table in value:
                _as_tables(table)
        elif isinstance(value, Table):
            _as_tables(value)


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
