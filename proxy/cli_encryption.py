"""`tenantry encryption ...`: turn record encryption on or off for a tenant's topics, and rotate its key.

``enable`` and ``disable`` edit the tenant's ``encryption`` table in the config file (a running proxy
applies it on its next reload); ``rotate`` makes a new key-encryption key in the key store the file's
``encryption_key_store`` names. Records sealed under an old key stay readable.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tenantry.proxy.cli_store import FileStore, KafkaStore, add_store_flags, command_line, open_store
from tenantry.proxy.config import ConfigError, read_file
from tenantry.tenants import admin
from tenantry.tenants.keystore import KeyStoreError, LocalKeyStore
from tenantry.tenants.registry import RegistryError
from tenantry.tenants.store import StoreError, edit_config


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    enc = sub.add_parser("encryption", help="encrypt a tenant's records at the proxy, per topic")
    esub = enc.add_subparsers(dest="encryption_command", required=True, metavar="COMMAND")

    def command(name: str, text: str, globs: bool = True) -> argparse.ArgumentParser:
        p = esub.add_parser(name, help=text)
        p.add_argument("tenant", metavar="TENANT", help="the tenant's id")
        if globs:
            p.add_argument("--topics", required=True, metavar="GLOB[,GLOB]",
                           type=lambda v: [g for g in v.split(",") if g],
                           help="the tenant's topic names, or globs (* ? [...]) matching them")
        p.add_argument("--config", default=os.environ.get("TENANTRY_CONFIG"), metavar="FILE",
                       help="the proxy's TOML config file (env TENANTRY_CONFIG)")
        add_store_flags(p)
        return p

    enable = command("enable", "seal the records produced to these topics from now on, and open them for the "
                               "tenant's consumers (records already written stay as they are)")
    enable.add_argument("--key-store", metavar="PATH",
                        help="set the proxy's encryption_key_store to this file (created on first use, mode 0600), "
                             "if the config file names none yet")
    command("disable", "stop sealing records produced to these topics; records sealed before are still opened")
    command("rotate", "give the tenant a new key-encryption key: new data keys are wrapped with it (within "
                      "encryption_data_key_max_age_seconds on a running proxy); old ones still unwrap", globs=False)
    command("show", "show which of the tenant's topics are encrypted", globs=False)


def run(args: argparse.Namespace) -> int:
    store = open_store(args)
    if store is None:
        return 2
    try:
        if args.encryption_command == "show":
            tenant = store.registry().tenants.get(args.tenant)
            if tenant is None:
                raise RegistryError(f"tenant {args.tenant}: no such tenant")
            policy = tenant.encryption
            print(f"tenant {tenant.id}: sealed and opened: {', '.join(policy.topics) or 'none'}; "
                  f"opened only: {', '.join(policy.read_topics) or 'none'}")
            return 0
        settings = _settings_file(args, store)
        if args.encryption_command == "rotate":
            key_store = _key_store_path(read_file(settings))
            if key_store is None:
                raise StoreError(f"{settings}: no encryption_key_store is set, so there is no key to rotate")
            if args.tenant not in store.registry().tenants:
                raise RegistryError(f"tenant {args.tenant}: no such tenant")
            kek_id = LocalKeyStore(key_store).rotate(args.tenant)
            print(f"tenant {args.tenant}: new key-encryption key {kek_id} in {key_store}")
            return 0
        if args.encryption_command == "enable" and isinstance(store, KafkaStore):
            # The key store is a proxy setting, in the file; the tenants' encryption tables are in Kafka.
            if not args.key_store and _key_store_path(read_file(settings)) is None:
                raise StoreError(f"{settings}: no encryption_key_store is set; set it in the proxy's config")
            if args.key_store:
                with edit_config(settings) as data:
                    _require_key_store(data, args.key_store, settings)
        with store.edit(command_line()) as data:
            if args.encryption_command == "enable" and isinstance(store, FileStore):
                _require_key_store(data, args.key_store, settings)
            message = admin.set_encryption(data, args.tenant, args.topics, args.encryption_command == "enable")
        print(f"tenant {args.tenant}: {message} (a running proxy applies it at once)")
        return 0
    except (RegistryError, StoreError, ConfigError, KeyStoreError) as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 1


def _settings_file(args: argparse.Namespace, store: FileStore | KafkaStore) -> Path:
    """The proxy's config file, which names the key store: the tenants' file, or --config beside the Kafka store."""
    if isinstance(store, FileStore):
        if not store.path.exists():
            raise StoreError(f"{store.path}: no such file (`tenantry tenant add` creates one)")
        return store.path
    if not args.config:
        raise StoreError("give --config FILE: the proxy's config names encryption_key_store")
    return Path(args.config)


def _key_store_path(data: dict[str, Any]) -> Path | None:
    value = data.get("proxy", {}).get("encryption_key_store") or data.get("encryption_key_store")
    return Path(value) if value else None


def _require_key_store(data: dict[str, Any], given: str | None, path: Path) -> None:
    """Encryption without a key store would stop the proxy from starting: set one, or say how."""
    if given:
        table = data.get("proxy", data)
        table["encryption_key_store"] = str(Path(given).absolute())
    elif _key_store_path(data) is None:
        raise StoreError(f"{path}: no encryption_key_store is set; give --key-store PATH (a file the proxy keeps "
                         "the tenants' key-encryption keys in)")
