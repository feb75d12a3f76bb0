"""The `tenantry` command: serve the proxy, and run a local Kafka broker for development.

    tenantry serve --config FILE [--listen HOST:PORT] [--upstream HOST:PORT,...] ...
    tenantry kafka start --dir DIR [--brokers N] [--tls] [--port PORT] [--version V] | --dir DIR --broker ID
    tenantry kafka stop --dir DIR [--broker ID]
    tenantry tenant add|list|remove ...   /   tenantry user add|remove|passwd ...
    tenantry config check FILE
    tenantry reload [--url HOST:PORT | --config FILE]
    tenantry status [--url HOST:PORT | --config FILE] [--json]
    tenantry --version
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenantry.protocol.scanner import SCANNER
from tenantry.proxy import cli_config, cli_encryption, cli_tenants
from tenantry.proxy.config import (
    ConfigError,
    ProxyConfig,
    env_name,
    load_config,
    read_file,
    require_listener,
    split_host_port,
)

if TYPE_CHECKING:
    from tenantry.tenants.registry import Registry

log = logging.getLogger("tenantry")


_METAVARS = {"upstream": "HOST:PORT[,...]", "listen": "HOST:PORT", "metrics_listen": "HOST:PORT",
             "advertised_host": "HOST", "broker_port_base": "PORT", "sasl_enabled_mechanisms": "MECHANISM[,...]",
             "probe_tenants": "TENANT[,...]", "upstream_sasl_username": "USER", "max_connection_age_jitter": "FRACTION",
             "upstream_sasl_password": "PASSWORD", "sasl_salt_secret": "SECRET", "upstream_sasl_mechanism": "MECHANISM",
             "max_buffered_bytes_per_tenant": "BYTES", "max_buffered_bytes_before_login": "BYTES",
             "capacity_produce_bytes_per_sec": "BYTES/S", "capacity_fetch_bytes_per_sec": "BYTES/S",
             "upstream_ssl_key_password": "PASSWORD", "upstream_ssl_check_hostname": "TRUE|FALSE"}
_SUFFIX_METAVARS = (("_ms", "MS"), ("_seconds", "SECONDS"), ("_bytes", "BYTES"), ("_per_sec", "RATE"),
                    ("_file", "FILE"), ("_cafile", "FILE"), ("_certfile", "FILE"), ("_keyfile", "FILE"),
                    ("_protocol", "PROTOCOL"))


def metavar(name: str) -> str:
    """How a setting's value is written in --help: its unit or its shape."""
    if name in _METAVARS:
        return _METAVARS[name]
    for suffix, shown in _SUFFIX_METAVARS:
        if name.endswith(suffix):
            return shown
    kind = {f.name: f.type for f in fields(ProxyConfig)}[name]
    return "N" if kind in (int, "int") else name.rsplit("_", 1)[-1].upper()


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=os.environ.get("TENANTRY_CONFIG"), metavar="FILE",
                        help="TOML config file (env TENANTRY_CONFIG)")
    for f in fields(ProxyConfig):
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, dest=f.name, default=None, metavar=metavar(f.name),
                            help=f"{f.metadata['help']} (env {env_name(f.name)})")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("tenantry")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tenantry", description="A multi-tenant proxy for Apache Kafka")
    parser.add_argument("--version", action="version", version=f"tenantry {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the proxy in the foreground")
    _add_config_flags(serve)
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)  # set by --workers' parent

    kafka = sub.add_parser("kafka", help="a local Kafka cluster (one node by default) for development and tests")
    kafka_sub = kafka.add_subparsers(dest="kafka_command", required=True, metavar="COMMAND")
    start = kafka_sub.add_parser("start", help="start a cluster in the background and print its PLAINTEXT "
                                               "bootstrap servers (DIR/cluster.json describes every listener)")
    start.add_argument("--dir", required=True, metavar="DIR", help="folder for the cluster's data, logs and state")
    start.add_argument("--brokers", type=int, default=1, metavar="N",
                       help="brokers; more than 1 adds a separate controller (default 1: one combined node)")
    start.add_argument("--tls", action="store_true",
                       help="also SSL (client certificates required) and SASL_SSL listeners, with a CA made in DIR/tls")
    start.add_argument("--broker", type=int, default=None, metavar="ID",
                       help="start this stopped broker of the cluster in DIR again, on its own ports")
    start.add_argument("--port", type=int, default=None, metavar="PORT",
                       help="broker 1's PLAINTEXT port (default: a free one)")
    from tenantry.localkafka.jars import DEFAULT_VERSION, SUPPORTED_VERSIONS

    start.add_argument("--version", default=DEFAULT_VERSION, metavar="VERSION",
                       help=f"Kafka version (default {DEFAULT_VERSION}; tested: {', '.join(SUPPORTED_VERSIONS)})")
    stop = kafka_sub.add_parser("stop", help="stop the cluster started from --dir, or one of its brokers")
    stop.add_argument("--dir", required=True, metavar="DIR", help="the folder the cluster was started with")
    stop.add_argument("--broker", type=int, default=None, metavar="ID", help="stop only this broker")
    status = sub.add_parser("status", help="live tenants, connections and quota use of a running proxy")
    status.add_argument("--url", default=os.environ.get("TENANTRY_STATUS_URL"), metavar="HOST:PORT",
                        help="the proxy's metrics_listen, as HOST:PORT or http://HOST:PORT (env TENANTRY_STATUS_URL)")
    status.add_argument("--config", default=os.environ.get("TENANTRY_CONFIG"), metavar="FILE",
                        help="or the proxy's config file, to read metrics_listen from (env TENANTRY_CONFIG)")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    reload = sub.add_parser("reload", help="make a running proxy re-read its config file now, as SIGHUP does, and "
                                           "wait until it has")
    reload.add_argument("--url", default=os.environ.get("TENANTRY_STATUS_URL"), metavar="HOST:PORT",
                        help="the proxy's metrics_listen (env TENANTRY_STATUS_URL)")
    reload.add_argument("--config", default=os.environ.get("TENANTRY_CONFIG"), metavar="FILE",
                        help="or the proxy's config file, to read metrics_listen from (env TENANTRY_CONFIG)")
    cli_tenants.add_parsers(sub)
    cli_encryption.add_parsers(sub)
    cli_config.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args, sys.argv[1:] if argv is None else argv)
    if args.command == "kafka":
        return _kafka(args)
    if args.command == "status":
        return _status(args)
    if args.command == "config":
        return cli_config.run(args)
    if args.command == "reload":
        return _reload(args)
    if args.command == "encryption":
        return cli_encryption.run(args)
    return cli_tenants.run(args)


def _serve(args: argparse.Namespace, argv: list[str]) -> int:
    overrides: dict[str, Any] = {f.name: getattr(args, f.name) for f in fields(ProxyConfig)}
    try:
        config = load_config(args.config, overrides)
        require_listener(config)
        if args.worker_index and config.metrics_listen:  # each worker its own admin port: the port + its index
            host, port = split_host_port(config.metrics_listen, "metrics_listen")
            overrides["metrics_listen"] = config.metrics_listen = f"{host}:{port + args.worker_index}"
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"tenantry: invalid configuration: {problem}", file=sys.stderr)
        return 2
    registry = None
    if config.tenants_enabled and config.tenant_store == "file":
        from tenantry.tenants.registry import RegistryError
        from tenantry.tenants.store import StoreError, load_registry

        if not args.config:
            print("tenantry: listener_security_protocol SASL_PLAINTEXT needs --config FILE with [[tenants]]",
                  file=sys.stderr)
            return 2
        try:
            registry = load_registry(Path(args.config))
        except (StoreError, RegistryError) as exc:
            print(f"tenantry: invalid tenants in {args.config}: {exc}", file=sys.stderr)
            return 2
        from tenantry.proxy.tenant_checks import setup_problems

        for problem in setup_problems(config, registry):
            print(f"tenantry: invalid configuration: {problem}", file=sys.stderr)
            return 2
    unknown = [t for t in config.probe_tenants if config.tenant_store == "file" and
               (registry is None or t not in registry.tenants)]
    if unknown:
        print(f"tenantry: probe_tenants: no tenant {', '.join(unknown)} in {args.config}", file=sys.stderr)
        return 2
    from tenantry.proxy.logs import configure

    configure(config.log_level, config.log_format)
    _log_start(config)
    if config.workers > 1 and args.worker_index is None:
        from tenantry.proxy.workers import Supervisor, worker_command

        return Supervisor(worker_command(argv), config.workers, config.shutdown_timeout_seconds).run()
    import uvloop

    try:
        return uvloop.run(_run_server(config, registry, Path(args.config) if args.config else None, overrides))
    except KeyboardInterrupt:
        return 0


def _log_start(config: ProxyConfig) -> None:
    """The effective settings, and a warning for each that weakens the proxy."""
    import json

    if SCANNER != "C":
        log.warning("the C extension tenantry.protocol._native is not built (no C compiler at install?): the "
                    "Python scanner runs, at several times the CPU per request")
    log.info("tenantry %s starting; effective configuration (secrets masked): %s", version(),
             json.dumps(config.redacted(), default=str, sort_keys=True))
    from tenantry.proxy import test_switches

    if test_switches.SKIP_OWNERSHIP_CHECKS:
        log.warning("TENANTRY_TEST_ONLY_SKIP_OWNERSHIP_CHECKS is set: the proxy does not check topic ids or fetch "
                    "sessions for ownership. This is for tests of the brokers' own ACLs, never for production")
    if config.upstream_tls and not config.upstream_ssl_check_hostname:
        log.warning("upstream_ssl_check_hostname is off: any certificate the CA signed is taken for any broker")
    if not config.tenants_enabled:
        log.warning("transparent proxy (listener_security_protocol = PLAINTEXT): no tenants and no logins, "
                    "every client sees the whole cluster; for trusted networks only")


async def _run_server(config: ProxyConfig, registry: Registry | None, config_path: Path | None,
                      overrides: dict[str, Any]) -> int:
    from tenantry.proxy.kafka_store import TenantStoreError
    from tenantry.proxy.server import ProxyServer
    from tenantry.proxy.upstream import UpstreamError

    server = ProxyServer(config, registry)
    server.overrides = overrides  # a reload reads the file again, but flags still win over it
    server.config_path = config_path if config.tenants_enabled else None  # settings reload with either store
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Start-up waits for the cluster for as long as it takes; a signal meanwhile stops it cleanly.
    starting = loop.create_task(server.start())
    stopping = loop.create_task(stop.wait())
    await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        log.info("stopped before the upstream cluster could be reached")
        await server.shutdown()
        return 0
    stopping.cancel()
    try:
        starting.result()
    except (UpstreamError, OSError) as exc:
        log.error("cannot start: %s", exc)
        await server.shutdown()
        return 1
    except TenantStoreError as exc:  # fail closed: a store that does not validate serves nobody
        log.error("cannot start: %s", exc)
        await server.shutdown()
        return 2
    watcher = None
    from tenantry.proxy.reload import reload_config, watch
    from tenantry.proxy.tls import reload_certificate, reload_upstream

    def on_sighup() -> None:
        if config.tenants_enabled and config_path is not None:
            reload_config(server, config_path)
        reload_certificate(server.tls, config)
        server.upstream_tls = reload_upstream(server.upstream_tls, config)
    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    if config.tenants_enabled and config_path is not None and config.config_poll_seconds > 0:
        watcher = loop.create_task(watch(server, config_path, config.config_poll_seconds))
    # What start-up built (the codec's classes, the tenants, the config) lives as long as the process. Frozen,
    # the cyclic collector stops re-scanning it in every full collection: 35-45 ms on the event loop, each.
    gc.collect()
    gc.freeze()
    log.info("proxy ready")
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    log.info("shutting down: draining connections for up to %.0fs", config.shutdown_timeout_seconds)
    await server.shutdown()
    return 0


def _admin_url(args: argparse.Namespace) -> str | None:
    """The running proxy's metrics_listen, from --url or the config file; None (and a message) if neither."""
    url = args.url
    if not url and args.config:
        try:
            data = read_file(args.config)
        except ConfigError as exc:
            print(f"tenantry: {exc}", file=sys.stderr)
            return None
        url = data.get("proxy", data).get("metrics_listen", "")
    if not url:
        print("tenantry: give --url HOST:PORT (the proxy's metrics_listen) or a --config that sets "
              "metrics_listen", file=sys.stderr)
        return None
    try:
        return status_url(url)
    except ConfigError as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return None


def _status(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.request

    from tenantry.proxy.status import render

    url = _admin_url(args)
    if url is None:
        return 2
    try:
        with urllib.request.urlopen(url + "/status", timeout=10) as answer:
            status = json.load(answer)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"tenantry: no status from {url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0


def _reload(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.request

    url = _admin_url(args)
    if url is None:
        return 2
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/reload", method="POST"), timeout=30) as answer:
            result = json.load(answer)
    except urllib.error.HTTPError as exc:
        print(f"tenantry: the proxy refused the reload ({exc.code}); its log says why", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"tenantry: no answer from {url}: {exc}", file=sys.stderr)
        return 1
    print(f"reloaded {result['file']}")
    return 0


def status_url(text: str) -> str:
    """The /status base URL from HOST:PORT (as metrics_listen is written) or a full http:// URL."""
    if "://" in text:
        return text.rstrip("/")
    host, port = split_host_port(text, "--url")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard listen is reached on loopback
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _kafka(args: argparse.Namespace) -> int:
    from tenantry.localkafka import KafkaBroker, KafkaBrokerError, load_running
    from tenantry.localkafka.cluster import CLUSTER_FILE, KafkaCluster

    try:
        if args.kafka_command == "start" and args.broker is None:
            cluster = KafkaCluster(args.dir, brokers=args.brokers, tls=args.tls, version=args.version, port=args.port)
            cluster.start()
            print(cluster.bootstrap())
            return 0
        if not (Path(args.dir) / CLUSTER_FILE).exists() and args.broker is None:  # made before cluster.json
            if load_running(args.dir) is None:
                raise KafkaBrokerError(f"no broker is running from {args.dir}")
            KafkaBroker(args.dir).stop()
            return 0
        cluster = KafkaCluster.load(args.dir)
        if args.broker is not None:
            (cluster.start_broker if args.kafka_command == "start" else cluster.stop_broker)(args.broker)
        elif not cluster.running():
            raise KafkaBrokerError(f"no broker is running from {args.dir}")
        else:
            cluster.stop()
    except (KafkaBrokerError, RuntimeError) as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
