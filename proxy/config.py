"""The proxy's configuration: one table of fields, filled from a TOML file, TENANTRY_* variables and flags.

Precedence is flag > environment variable > file > default. :func:`load_config` validates everything up
front and raises :class:`ConfigError` naming the field, what was wrong and what is expected.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import logging
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger("tenantry.config")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT")
LISTENER_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class ConfigError(ValueError):
    """The configuration is invalid; each of `problems` names a field and what is wrong with it."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _opt(help_: str, secret: bool = False, metavar: str = "") -> dict[str, Any]:
    return {"help": help_, "secret": secret, "metavar": metavar}


#: Settings renamed so that every duration names its unit; the old names still work, with a warning.
RENAMED = {"upstream_connect_timeout": "upstream_connect_timeout_seconds",
           "shutdown_timeout": "shutdown_timeout_seconds"}


@dataclass
class ProxyConfig:
    """Every setting of `tenantry serve`. Field names are the file keys; flags and env vars derive from them."""

    upstream: list[str] = field(default_factory=list, metadata=_opt(
        "Bootstrap servers of the upstream Kafka cluster, host:port, comma-separated."))
    listen: str = field(default="127.0.0.1:19092", metadata=_opt(
        "host:port of the bootstrap listener clients connect to."))
    advertised_host: str = field(default="", metadata=_opt(
        "Host name the proxy gives clients for every broker (default: the listen host)."))
    broker_port_base: int = field(default=0, metadata=_opt(
        "Upstream broker N is served on port broker_port_base + N (default: the listen port + 1)."))
    listener_security_protocol: str = field(default="", metadata=_opt(
        "Required. SASL_PLAINTEXT or SASL_SSL: clients log in as users of the tenants in the config file, "
        "each in its own namespace. PLAINTEXT: no tenants and no logins, every client sees the whole "
        "cluster (a transparent proxy, for trusted networks only)."))
    ssl_certfile: str = field(default="", metadata=_opt(
        "PEM certificate chain for SASL_SSL listeners (re-read on SIGHUP)."))
    ssl_keyfile: str = field(default="", metadata=_opt("PEM private key for ssl_certfile."))
    sasl_enabled_mechanisms: list[str] = field(default_factory=lambda: ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"],
                                               metadata=_opt("SASL mechanisms clients may use, comma-separated."))
    sasl_salt_secret: str = field(default="", repr=False, metadata=_opt(
        "Keys the salts the proxy invents for unknown users and missing mechanisms, so that they stay the "
        "same across restarts and replicas (set the same value on every replica). Default: derived from "
        "upstream_sasl_password; required when there is none.", secret=True))
    sasl_session_lifetime_ms: int = field(default=0, metadata=_opt(
        "Clients must re-authenticate within this many ms (KIP-368); 0 means sessions do not expire."))
    auth_failure_delay_ms: int = field(default=1000, metadata=_opt(
        "A failed login is answered after this delay, then the connection is closed."))
    config_poll_seconds: float = field(default=2.0, metadata=_opt(
        "How often to check the config file for changes to the tenants (0: only on SIGHUP)."))
    upstream_security_protocol: str = field(default="PLAINTEXT", metadata=_opt(
        "PLAINTEXT or SASL_PLAINTEXT, for the proxy's own connections to the brokers."))
    upstream_sasl_mechanism: str = field(default="SCRAM-SHA-512", metadata=_opt(
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, with upstream_security_protocol=SASL_PLAINTEXT."))
    upstream_sasl_username: str = field(default="", metadata=_opt("The proxy's service user on the brokers."))
    upstream_identity: str = field(default="auto", metadata=_opt(
        "Who the proxy is on the brokers for a tenant's connections: service (its service user), tenant (a "
        "broker user per tenant, with PREFIXED ACLs the service user provisions: the broker then refuses "
        "cross-tenant access by itself), or auto (tenant when the brokers have an authorizer)."))
    upstream_sasl_password: str = field(default="", repr=False, metadata=_opt(
        "The service user's password; prefer TENANTRY_UPSTREAM_SASL_PASSWORD or the _file field.", secret=True))
    upstream_sasl_password_file: str = field(default="", metadata=_opt(
        "A file holding the service user's password (read at start)."))
    max_frame_bytes: int = field(default=100 * 1024 * 1024, metadata=_opt(
        "Largest request or response frame accepted, in bytes (Kafka's socket.request.max.bytes)."))
    max_buffered_bytes: int = field(default=256 * 1024 * 1024, metadata=_opt(
        "Memory all connections together may hold for large frames still arriving; past it, reading "
        "pauses (Kafka's queued.max.request.bytes)."))
    max_buffered_bytes_per_tenant: int = field(default=0, metadata=_opt(
        "The most of max_buffered_bytes one tenant's connections may hold together (0: half of it), so that "
        "no tenant can make the others wait for memory."))
    sasl_max_receive_bytes: int = field(default=512 * 1024, metadata=_opt(
        "Largest frame accepted from a client that has not logged in (Kafka's sasl.server.max.receive.size)."))
    max_buffered_bytes_before_login: int = field(default=16 * 1024 * 1024, metadata=_opt(
        "Memory all connections that have not logged in may hold together for frames still arriving; it is "
        "apart from max_buffered_bytes, so they can never make a logged-in tenant wait."))
    max_unauthenticated_connections_per_ip: int = field(default=1000, metadata=_opt(
        "Connections one IP address may hold open before logging in; more are closed at once (0: no limit)."))
    unauthenticated_connections_per_ip_per_sec: float = field(default=0.0, metadata=_opt(
        "New connections per second one IP address may open, as Kafka's per-IP limit of KIP-612; more are "
        "closed at once (0: no limit)."))
    login_timeout_ms: int = field(default=10_000, metadata=_opt(
        "A client connection that has not logged in after this many ms is closed."))
    max_in_flight: int = field(default=1000, metadata=_opt(
        "Requests a client connection may have in flight before the proxy stops reading from it."))
    upstream_connect_timeout_seconds: float = field(default=10.0, metadata=_opt(
        "Seconds to connect and authenticate to a broker before giving up on the client connection."))
    shutdown_timeout_seconds: float = field(default=10.0, metadata=_opt(
        "Seconds in-flight requests get to finish on SIGTERM/SIGINT before connections are closed."))
    capacity_produce_bytes_per_sec: float = field(default=0.0, metadata=_opt(
        "What the cluster can take from all tenants together through this proxy; when their demand "
        "exceeds it, tenants' produce quotas are tuned to fair shares (0: no proxy-wide limit)."))
    capacity_fetch_bytes_per_sec: float = field(default=0.0, metadata=_opt(
        "The same for fetch bytes sent to all tenants together (0: no proxy-wide limit)."))
    capacity_connections_per_sec: float = field(default=0.0, metadata=_opt(
        "New connections per second the proxy accepts from everyone; above it, new connections wait "
        "before they are served, and tenants' connection-rate quotas are tuned (0: no limit)."))
    quota_max_delay_ms: int = field(default=10000, metadata=_opt(
        "The longest a single throttle may last (any debt left is owed by the next request)."))
    quota_tune_interval_ms: int = field(default=1000, metadata=_opt(
        "How often tenants' usage is measured and their quotas tuned to the proxy-wide capacity."))
    quota_idle_seconds: float = field(default=120.0, metadata=_opt(
        "A tenant with no produce or fetch traffic for this long is left out of the tuning."))
    log_level: str = field(default="INFO", metadata=_opt("DEBUG, INFO, WARNING or ERROR."))
    log_format: str = field(default="text", metadata=_opt(
        "text, or json for one JSON object per line with tenant, user, client_id and peer fields."))
    metrics_listen: str = field(default="", metadata=_opt(
        "host:port of the HTTP listener for /metrics, /healthz, /readyz, /status and POST /reload (empty: off). It "
        "names every tenant: keep it on an operators' network."))
    metrics_label_limit: int = field(default=0, metadata=_opt(
        "Also count traffic by client id and by produced topic, for at most this many of each per tenant "
        "(the rest as 'other'); 0 keeps those labels off."))
    health_check_interval_seconds: float = field(default=5.0, metadata=_opt(
        "How often the proxy logs in to each upstream broker to check it, for /readyz and the "
        "tenantry_upstream_up metric."))
    max_connection_age_seconds: float = field(default=0.0, metadata=_opt(
        "Close a client connection (after its in-flight requests) once it is this old, so clients "
        "spread over new replicas after a scale-out; 0: no limit."))
    max_connection_age_jitter: float = field(default=0.2, metadata=_opt(
        "Each connection's age limit is shortened by a random fraction up to this, so reconnections spread."))
    probe_tenants: list[str] = field(default_factory=list, metadata=_opt(
        "Tenants to probe end to end: the proxy produces and consumes through its own listener as a "
        "hidden user of each, and exports availability and latency (comma-separated)."))
    probe_interval_seconds: float = field(default=10.0, metadata=_opt(
        "Seconds between two end-to-end probe messages of a tenant."))

    @property
    def tenants_enabled(self) -> bool:
        return self.listener_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def listen_host(self) -> str:
        return split_host_port(self.listen, "listen")[0]

    @property
    def listen_port(self) -> int:
        return split_host_port(self.listen, "listen")[1]

    def broker_port(self, node_id: int) -> int:
        return self.broker_port_base + node_id

    def upstream_addresses(self) -> list[tuple[str, int]]:
        return [split_host_port(a, "upstream") for a in self.upstream]

    def redacted(self) -> dict[str, Any]:
        """The settings with every secret masked, for logs and `status` output."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = "***" if f.metadata.get("secret") and value else value
        return out


def split_host_port(text: str, name: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name}: {text!r} is not host:port (for example 127.0.0.1:9092)")
    return host.strip("[]"), int(port)


def env_name(field_name: str) -> str:
    return "TENANTRY_" + field_name.upper()


def _coerce(name: str, kind: Any, value: Any) -> Any:
    try:
        if kind in (list[str], "list[str]"):
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
            raise ValueError("expected a list of strings")
        if kind in (int, "int"):
            if isinstance(value, bool):
                raise ValueError("expected a whole number")
            return int(value)
        if kind in (float, "float"):
            return float(value)
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    except ValueError as exc:
        raise ConfigError(f"{name}: {value!r} is invalid ({exc})") from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> ProxyConfig:
    """Build and validate the config from a file, the environment and flag overrides.

    Every problem is collected before anything is refused, so one ConfigError lists them all.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    known = {f.name: f for f in fields(ProxyConfig)}
    values: dict[str, tuple[Any, str]] = {}  # name -> (value, where it came from, for error messages)
    problems: list[str] = []
    data = read_file(path) if path else {}
    for key, value in data.get("proxy", data).items():
        if key in ("tenants", "proxy", "tenant_defaults"):
            continue
        name = _known_name(key, known, problems, f"in {path}")
        if name is not None:
            values[name] = (value, name)
    for name in known:
        for variable in (env_name(name), *(env_name(old) for old, new in RENAMED.items() if new == name)):
            if variable in env:
                if variable != env_name(name):
                    _deprecated(variable, env_name(name))
                values[name] = (env[variable], f"{name} (environment variable {variable})")
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = (value, name)
    typed = {}
    for name, (value, label) in values.items():
        try:
            typed[name] = _coerce(label, known[name].type, value)
        except ConfigError as exc:
            problems += exc.problems
    config = ProxyConfig(**typed)
    problems += validation_problems(config)
    if path and data.get("tenants") and not config.tenants_enabled:
        problems.append(f"listener_security_protocol: {path} defines tenants, but the listener is "
                        f"{config.listener_security_protocol or 'not set'}, which would serve them to clients "
                        "without credentials; set it to SASL_PLAINTEXT or SASL_SSL")
    if problems:
        raise ConfigError(*problems)
    return config


def read_file(path: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None


def _known_name(key: str, known: Mapping[str, Any], problems: list[str], where: str) -> str | None:
    if key in known:
        return key
    if key in RENAMED:
        _deprecated(key, RENAMED[key])
        return RENAMED[key]
    guess = difflib.get_close_matches(key, [*known, *RENAMED], n=1, cutoff=0.6)
    hint = f"did you mean {guess[0]!r}?" if guess else "see `tenantry serve --help` for the settings"
    problems.append(f"{key}: unknown setting {where}; {hint}")
    return None


def _deprecated(old: str, new: str) -> None:
    log.warning("%s is deprecated: it is now %s", old, new)


def require_listener(config: ProxyConfig) -> None:
    """Serving needs an explicit choice of listener: a transparent proxy is never a default (fail closed)."""
    if not config.listener_security_protocol:
        raise ConfigError("listener_security_protocol: not set. Choose SASL_PLAINTEXT or SASL_SSL to serve the "
                          "tenants of the config file, or PLAINTEXT for a transparent proxy without tenants, "
                          "which lets every client see the whole cluster (trusted networks only)")


def validate(config: ProxyConfig) -> ProxyConfig:
    problems = validation_problems(config)
    if problems:
        raise ConfigError(*problems)
    return config


def validation_problems(config: ProxyConfig) -> list[str]:
    """Everything wrong with a config, one message per problem (empty if it is valid)."""
    problems: list[str] = []
    for check in (_check_upstream_servers, _validate_listener, _validate_upstream, _validate_identity,
                  _validate_salt, _validate_numbers, _validate_operations):
        try:
            problems += check(config)
        except ConfigError as exc:  # a check that cannot go on past its first problem
            problems += exc.problems
    return problems


def _check_upstream_servers(config: ProxyConfig) -> Iterator[str]:
    if not config.upstream:
        yield "upstream: no upstream bootstrap server given (set --upstream host:port)"
    config.upstream_addresses()


def _validate_salt(config: ProxyConfig) -> Iterator[str]:
    if config.tenants_enabled and not (config.sasl_salt_secret or config.upstream_sasl_password):
        yield ("sasl_salt_secret: not set, and there is no upstream_sasl_password to derive it from. "
               "Set it (TENANTRY_SASL_SALT_SECRET) to the same random value on every replica: without it, "
               "the salts invented for unknown users would change at each restart and tell them apart")


def _validate_listener(config: ProxyConfig) -> Iterator[str]:
    host, port = split_host_port(config.listen, "listen")
    if not config.advertised_host:
        config.advertised_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if not config.broker_port_base:
        config.broker_port_base = port + 1
    if not 0 < config.broker_port_base < 65536:
        yield f"broker_port_base: {config.broker_port_base} is not a port number"
    if config.listener_security_protocol not in ("", *LISTENER_PROTOCOLS):  # "": not chosen, see require_listener
        yield (f"listener_security_protocol: {config.listener_security_protocol!r} is not one of "
               f"{', '.join(LISTENER_PROTOCOLS)}")
    if config.listener_security_protocol == "SASL_SSL":
        for name in ("ssl_certfile", "ssl_keyfile"):
            value = getattr(config, name)
            if not value or not Path(value).is_file():
                yield f"{name}: SASL_SSL needs a readable PEM file, got {value!r}"
    unknown = [m for m in config.sasl_enabled_mechanisms if m not in SASL_MECHANISMS]
    if unknown or not config.sasl_enabled_mechanisms:
        yield (f"sasl_enabled_mechanisms: {', '.join(unknown) or 'none given'}; choose from "
               f"{', '.join(SASL_MECHANISMS)}")


def _validate_upstream(config: ProxyConfig) -> Iterator[str]:
    if config.upstream_security_protocol not in SECURITY_PROTOCOLS:
        yield (f"upstream_security_protocol: {config.upstream_security_protocol!r} is not one of "
               f"{', '.join(SECURITY_PROTOCOLS)}")
    if config.upstream_security_protocol == "SASL_PLAINTEXT":
        if config.upstream_sasl_mechanism not in SASL_MECHANISMS:
            yield (f"upstream_sasl_mechanism: {config.upstream_sasl_mechanism!r} is not one of "
                   f"{', '.join(SASL_MECHANISMS)}")
        if config.upstream_sasl_password_file and not config.upstream_sasl_password:
            try:
                config.upstream_sasl_password = Path(config.upstream_sasl_password_file).read_text().strip()
            except OSError as exc:
                yield f"upstream_sasl_password_file: cannot read it ({exc.strerror})"
        if not config.upstream_sasl_username or not config.upstream_sasl_password:
            yield ("upstream_sasl_username/upstream_sasl_password: SASL_PLAINTEXT needs both "
                   "(the password via TENANTRY_UPSTREAM_SASL_PASSWORD or a password file)")


def _validate_identity(config: ProxyConfig) -> Iterator[str]:
    if config.upstream_identity not in ("auto", "service", "tenant"):
        yield f"upstream_identity: {config.upstream_identity!r} is not auto, service or tenant"
    if config.upstream_identity == "tenant" and not (
            config.tenants_enabled and config.upstream_security_protocol == "SASL_PLAINTEXT"):
        yield ("upstream_identity: tenant needs tenants (a SASL listener) and a SASL upstream, whose "
               "service user provisions the tenants' broker users")


def _validate_numbers(config: ProxyConfig) -> Iterator[str]:
    for name in ("max_frame_bytes", "max_buffered_bytes", "max_in_flight", "quota_max_delay_ms",
                 "quota_tune_interval_ms", "sasl_max_receive_bytes", "max_buffered_bytes_before_login",
                 "login_timeout_ms", "health_check_interval_seconds", "probe_interval_seconds"):
        if getattr(config, name) <= 0:
            yield f"{name}: must be positive, got {getattr(config, name)}"
    for name in ("upstream_connect_timeout_seconds", "shutdown_timeout_seconds", "sasl_session_lifetime_ms",
                 "auth_failure_delay_ms", "config_poll_seconds", "capacity_produce_bytes_per_sec",
                 "capacity_fetch_bytes_per_sec", "capacity_connections_per_sec", "quota_idle_seconds",
                 "max_connection_age_seconds", "metrics_label_limit", "max_buffered_bytes_per_tenant",
                 "max_unauthenticated_connections_per_ip", "unauthenticated_connections_per_ip_per_sec"):
        if getattr(config, name) < 0:
            yield f"{name}: must not be negative, got {getattr(config, name)}"


def _validate_operations(config: ProxyConfig) -> Iterator[str]:
    if config.metrics_listen:
        split_host_port(config.metrics_listen, "metrics_listen")
    if config.log_format not in ("text", "json"):
        yield f"log_format: {config.log_format!r} is not text or json"
    if not 0 <= config.max_connection_age_jitter < 1:
        yield f"max_connection_age_jitter: {config.max_connection_age_jitter} is not between 0 and 1"
    if config.probe_tenants and not config.tenants_enabled:
        yield "probe_tenants: probes log in as a tenant's user, so they need a SASL listener"
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        yield f"log_level: {config.log_level!r} is not DEBUG, INFO, WARNING or ERROR"


def salt_secret(config: ProxyConfig) -> bytes:
    """The key of invented SCRAM salts: the configured secret, or one derived from the service password."""
    source = config.sasl_salt_secret or config.upstream_sasl_password
    return hmac.new(b"tenantry: invented SCRAM salts", source.encode(), hashlib.sha256).digest()
