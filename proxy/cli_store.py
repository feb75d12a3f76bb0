"""Where the operator CLI reads and writes tenants: the config file (default) or the Kafka tenant store.

Every tenant, user, quota and encryption command takes ``--store file|kafka``. With kafka, the store is
``tenant_store_topic`` on the cluster ``--bootstrap`` names (or the config file's ``upstream``), reached
with the service user's settings from ``--config`` and the TENANTRY_UPSTREAM_* variables; every change
is recorded with who made it and when, and every replica applies it within seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenantry.proxy.config import ConfigError, ProxyConfig, load_config
from tenantry.tenants.registry import Registry
from tenantry.tenants.store import StoreError, edit_config, load_registry, read_config


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", choices=("file", "kafka"), default=os.environ.get("TENANTRY_TENANT_STORE", "file"),
                        help="file: the --config file's [[tenants]] (the default); kafka: the tenant store on the "
                             "cluster, as tenant_store = kafka serves it (env TENANTRY_TENANT_STORE)")
    parser.add_argument("--bootstrap", default=os.environ.get("TENANTRY_BOOTSTRAP"), metavar="HOST:PORT[,...]",
                        help="with --store kafka: the upstream cluster (default: upstream in --config; the service "
                             "user's settings come from --config and TENANTRY_UPSTREAM_*; env TENANTRY_BOOTSTRAP)")


@dataclass
class FileStore:
    path: Path

    def registry(self) -> Registry:
        return load_registry(self.path)

    def data(self) -> dict[str, Any]:
        return read_config(self.path)

    def edit(self, what: str) -> AbstractContextManager[dict[str, Any]]:
        return edit_config(self.path)

    def describe(self) -> str:
        return str(self.path)


@dataclass
class KafkaStore:
    config: ProxyConfig

    def registry(self) -> Registry:
        return Registry.from_config(self.data())

    def data(self) -> dict[str, Any]:
        from tenantry.proxy.kafka_store import read_kafka_store

        return read_kafka_store(self.config)

    def edit(self, what: str) -> AbstractContextManager[dict[str, Any]]:
        from tenantry.proxy.kafka_store import edit_kafka_store

        return edit_kafka_store(self.config, what)

    def describe(self) -> str:
        return f"{self.config.tenant_store_topic} on {','.join(self.config.upstream)}"


def open_store(args: argparse.Namespace) -> FileStore | KafkaStore | None:
    """The store the command names, or None after telling the operator what is missing."""
    if getattr(args, "store", "file") == "file":
        if not args.config:
            print("tenantry: give --config FILE or set TENANTRY_CONFIG", file=sys.stderr)
            return None
        return FileStore(Path(args.config))
    overrides: dict[str, Any] = {"upstream": args.bootstrap} if args.bootstrap else {}
    try:
        config = load_config(args.config, overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"tenantry: invalid configuration: {problem}", file=sys.stderr)
        return None
    if not config.upstream:
        print("tenantry: --store kafka needs --bootstrap HOST:PORT (or upstream in --config)", file=sys.stderr)
        return None
    return KafkaStore(config)


def command_line() -> str:
    """What the operator ran, for the store's change record (passwords are never on the command line)."""
    return "tenantry " + " ".join(sys.argv[1:])


def add_move_parsers(tsub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    export = with_config(tsub.add_parser("export", help="copy every tenant of the Kafka store into a config file's "
                                                        "[[tenants]] (replacing them there)"))
    export.add_argument("--to", required=True, metavar="FILE", help="the config file to write the tenants into")
    imp = with_config(tsub.add_parser("import", help="copy a config file's tenants into the Kafka store (adding or "
                                                     "replacing each; tenants only in the store stay)"))
    imp.add_argument("--from", dest="source", required=True, metavar="FILE", help="the config file to read")


def move_tenants(args: argparse.Namespace, store: FileStore | KafkaStore) -> str:
    """`tenant export` (the Kafka store into a file) and `tenant import` (a file into the Kafka store)."""
    if not isinstance(store, KafkaStore):
        raise StoreError(f"tenant {args.tenant_command} moves tenants between a file and the Kafka store: "
                         "give --store kafka")
    if args.tenant_command == "export":
        stored = store.data()
        with edit_config(Path(args.to)) as data:
            data["tenants"] = stored.get("tenants", [])
            if stored.get("tenant_defaults"):
                data["tenant_defaults"] = stored["tenant_defaults"]
        return f"{len(stored.get('tenants', []))} tenants from {store.describe()} written to {args.to}"
    source = read_config(Path(args.source))
    Registry.from_config(source)  # nothing half-imported: the file's tenants must validate first
    with store.edit(command_line()) as data:
        by_id = {t["id"]: t for t in data["tenants"]}
        by_id.update({t["id"]: t for t in source.get("tenants", [])})
        data["tenants"] = list(by_id.values())
        if source.get("tenant_defaults"):
            data["tenant_defaults"] = source["tenant_defaults"]
    return f"{len(source.get('tenants', []))} tenants from {args.source} written to {store.describe()}"
