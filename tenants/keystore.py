"""Key-encryption keys (KEKs) per tenant, behind one small interface, for record encryption (issue 18).

A KEK never leaves its store: the store wraps and unwraps data keys with it. :class:`LocalKeyStore` keeps
the KEKs in a file (created on first use, mode 0600), for tests and small setups; a KMS (HashiCorp
Vault's transit engine) is meant to implement the same :class:`KeyStore` protocol. Rotating a tenant's
KEK makes a new current key and keeps the old ones, so data keys wrapped before stay unwrappable.

Wrapping is AES-256-GCM with the tenant id and the KEK id as associated data: a wrapped key moved to
another tenant, or presented under another KEK id, does not unwrap.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12


class KeyStoreError(Exception):
    """A key cannot be had or used: unknown KEK, a wrapped key that does not unwrap, an unreadable store."""


@dataclass(frozen=True, slots=True)
class WrappedKey:
    kek_id: str
    blob: bytes  # nonce + AES-GCM ciphertext and tag of the data key


class KeyStore(Protocol):
    def wrap(self, tenant_id: str, data_key: bytes) -> WrappedKey:
        """Wrap `data_key` under the tenant's current KEK (made on first use)."""

    def unwrap(self, tenant_id: str, wrapped: WrappedKey) -> bytes:
        """The data key; KeyStoreError if it does not unwrap (unknown KEK, another tenant's, tampered)."""

    def rotate(self, tenant_id: str) -> str:
        """Make a new current KEK for the tenant; returns its id. Old KEKs still unwrap."""

    def hash_key(self, tenant_id: str) -> bytes:
        """The tenant's key for keyed hashes of record keys (made on first use). It never rotates: a new
        one would give every record key a second hash, and a compacted topic two records per key."""


def _aad(tenant_id: str, kek_id: str) -> bytes:
    return f"tenantry-kek\0{tenant_id}\0{kek_id}".encode()


class LocalKeyStore:
    """KEKs in a JSON file: ``{"tenants": {id: {"current": kek_id, "keys": {kek_id: base64}, "hash_key": base64}}}``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._keys: dict[str, dict[str, bytes]] = {}
        self._current: dict[str, str] = {}
        self._hash_keys: dict[str, bytes] = {}
        self._load()

    # -- the file ---------------------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_ino

    def _load(self) -> None:
        self._loaded = self._stamp()
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"{self.path}: cannot read the key store ({exc})") from None
        try:
            for tenant_id, entry in data["tenants"].items():
                self._keys[tenant_id] = {k: base64.b64decode(v) for k, v in entry["keys"].items()}
                self._current[tenant_id] = entry["current"]
                if "hash_key" in entry:
                    self._hash_keys[tenant_id] = base64.b64decode(entry["hash_key"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyStoreError(f"{self.path}: not a key store file ({exc})") from None

    def _save(self) -> None:
        data = {"tenants": {t: {"current": self._current[t],
                                "keys": {k: base64.b64encode(v).decode() for k, v in keys.items()},
                                **({"hash_key": base64.b64encode(self._hash_keys[t]).decode()}
                                   if t in self._hash_keys else {})}
                            for t, keys in self._keys.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                os.fchmod(out.fileno(), 0o600)  # key material: the owner alone, before a byte is written
                json.dump(data, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise

    def _reload(self) -> None:
        self._keys.clear()
        self._current.clear()
        self._hash_keys.clear()
        self._load()

    def _locked_change(self, tenant_id: str, rotate: bool) -> str:
        """Under the file's lock (re-reading it first), give the tenant a KEK if it has none, or a new one
        if `rotate`, and a hash key if it has none; returns its current KEK id."""
        try:
            return self._change_under_lock(tenant_id, rotate)
        except OSError as exc:
            raise KeyStoreError(f"{self.path}: cannot write the key store ({exc})") from None

    def _change_under_lock(self, tenant_id: str, rotate: bool) -> str:
        lock_path = self.path.with_name(self.path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._reload()
            changed = rotate or tenant_id not in self._current or tenant_id not in self._hash_keys
            if rotate or tenant_id not in self._current:
                kek_id = secrets.token_hex(8)
                self._keys.setdefault(tenant_id, {})[kek_id] = secrets.token_bytes(KEY_BYTES)
                self._current[tenant_id] = kek_id
            self._hash_keys.setdefault(tenant_id, secrets.token_bytes(KEY_BYTES))
            if changed:
                self._save()
        return self._current[tenant_id]

    # -- the interface ----------------------------------------------------------------------------------
    def wrap(self, tenant_id: str, data_key: bytes) -> WrappedKey:
        if self._stamp() != self._loaded:  # rotated by another process (`tenantry encryption rotate`)
            self._reload()
        kek_id = self._current.get(tenant_id)
        if kek_id is None:
            kek_id = self._locked_change(tenant_id, rotate=False)
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self._keys[tenant_id][kek_id]).encrypt(nonce, data_key, _aad(tenant_id, kek_id))
        return WrappedKey(kek_id, nonce + sealed)

    def unwrap(self, tenant_id: str, wrapped: WrappedKey) -> bytes:
        kek = self._keys.get(tenant_id, {}).get(wrapped.kek_id)
        if kek is None:
            self._reload()  # another process may have rotated since
            kek = self._keys.get(tenant_id, {}).get(wrapped.kek_id)
        if kek is None:
            raise KeyStoreError(f"tenant {tenant_id}: no key-encryption key {wrapped.kek_id!r}")
        nonce, sealed = wrapped.blob[:NONCE_BYTES], wrapped.blob[NONCE_BYTES:]
        try:
            return AESGCM(kek).decrypt(nonce, sealed, _aad(tenant_id, wrapped.kek_id))
        except InvalidTag:
            raise KeyStoreError(f"tenant {tenant_id}: a data key under {wrapped.kek_id!r} does not unwrap") from None

    def rotate(self, tenant_id: str) -> str:
        return self._locked_change(tenant_id, rotate=True)

    def hash_key(self, tenant_id: str) -> bytes:
        if tenant_id not in self._hash_keys:
            self._locked_change(tenant_id, rotate=False)
        return self._hash_keys[tenant_id]
