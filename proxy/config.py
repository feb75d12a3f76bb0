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
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from tenantry.proxy.settings import (
    LISTENER_MECHANISMS,
    LISTENER_PROTOCOLS,
    RENAMED,
    SECURITY_PROTOCOLS,
    ConfigError,
    ProxyConfig,
    split_host_port,
)
from tenantry.proxy.sni import BrokerNames
from tenantry.tenants.principal_rules import PrincipalRuleError, parse_rules

__all__ = ["RENAMED", "ConfigError", "ProxyConfig", "load_config", "split_host_port", "validate"]
log = logging.getLogger("tenantry.config")
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")

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
        if kind in (bool, "bool"):
            if isinstance(value, bool):
                return value
            words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
            if isinstance(value, str) and value.strip().lower() in words:
                return words[value.strip().lower()]
            raise ValueError("expected true or false")
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
    if path and (data.get("tenants") or data.get("tenant_defaults")) and config.tenant_store == "kafka":
        problems.append(f"tenant_store: kafka, but {path} defines tenants too; which would be in force is unclear: "
                        "move them into the store (tenantry tenant import) and out of the file")
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
    protocol = config.listener_security_protocol
    if protocol in ("SASL_SSL", "SSL"):
        missing = False
        for name in ("ssl_certfile", "ssl_keyfile", *(("ssl_cafile",) if protocol == "SSL" else ())):
            value = getattr(config, name)
            if not value or not Path(value).is_file():
                missing = True
                yield f"{name}: {protocol} needs a readable PEM file, got {value!r}"
        if not missing:
            yield from _listener_files_load(config)
    if config.sni_broker_host_pattern:
        if protocol not in ("SASL_SSL", "SSL"):
            yield (f"sni_broker_host_pattern: needs a TLS listener (SASL_SSL or SSL), whose handshake carries the "
                   f"host name; the listener is {protocol or 'not set'}")
        try:
            BrokerNames(config.sni_broker_host_pattern)
        except ValueError as exc:
            yield f"sni_broker_host_pattern: {exc}"
    try:
        parse_rules(config.ssl_principal_mapping_rules)
    except PrincipalRuleError as exc:
        yield f"ssl_principal_mapping_rules: {exc}"
    unknown = [m for m in config.sasl_enabled_mechanisms if m not in LISTENER_MECHANISMS]
    if unknown or not config.sasl_enabled_mechanisms:
        yield (f"sasl_enabled_mechanisms: {', '.join(unknown) or 'none given'}; choose from "
               f"{', '.join(LISTENER_MECHANISMS)}")
    if "OAUTHBEARER" in config.sasl_enabled_mechanisms:  # never a token from anyone, or for anything
        for name in ("sasl_oauthbearer_jwks_endpoint_url", "sasl_oauthbearer_expected_issuer",
                     "sasl_oauthbearer_expected_audience"):
            if not getattr(config, name):
                yield f"{name}: required with OAUTHBEARER in sasl_enabled_mechanisms"


def _listener_files_load(config: ProxyConfig) -> Iterator[str]:
    """The listener's certificate, key (and CA) must load, not only exist: named here, not a traceback at start."""
    from tenantry.proxy.tls import TlsFileError, server_context

    try:
        server_context(config)
    except TlsFileError as exc:
        yield str(exc)


def _validate_upstream(config: ProxyConfig) -> Iterator[str]:
    if config.upstream_security_protocol not in SECURITY_PROTOCOLS:
        yield (f"upstream_security_protocol: {config.upstream_security_protocol!r} is not one of "
               f"{', '.join(SECURITY_PROTOCOLS)}")
    yield from _validate_upstream_tls(config)
    if config.upstream_sasl:
        if config.upstream_sasl_mechanism not in LISTENER_MECHANISMS:
            yield (f"upstream_sasl_mechanism: {config.upstream_sasl_mechanism!r} is not one of "
                   f"{', '.join(LISTENER_MECHANISMS)}")
        if config.upstream_sasl_mechanism == "OAUTHBEARER" and not config.upstream_sasl_oauthbearer_token_endpoint_url:
            yield "upstream_sasl_oauthbearer_token_endpoint_url: required with upstream_sasl_mechanism OAUTHBEARER"
        if config.upstream_sasl_password_file and not config.upstream_sasl_password:
            try:
                config.upstream_sasl_password = Path(config.upstream_sasl_password_file).read_text().strip()
            except OSError as exc:
                yield f"upstream_sasl_password_file: cannot read it ({exc.strerror})"
        if not config.upstream_sasl_username or not config.upstream_sasl_password:
            yield (f"upstream_sasl_username/upstream_sasl_password: {config.upstream_security_protocol} needs both "
                   "(the password via TENANTRY_UPSTREAM_SASL_PASSWORD or a password file)")


UPSTREAM_TLS_FILES = ("upstream_ssl_cafile", "upstream_ssl_certfile", "upstream_ssl_keyfile")


def _validate_upstream_tls(config: ProxyConfig) -> Iterator[str]:
    """TLS settings without a TLS protocol are a contradiction: refused, never silently sent in the clear."""
    given = [name for name in (*UPSTREAM_TLS_FILES, "upstream_ssl_key_password") if getattr(config, name)]
    if not config.upstream_tls:
        if given:
            yield (f"{given[0]}: set, but upstream_security_protocol is {config.upstream_security_protocol}, so the "
                   "brokers would be reached unencrypted; choose SSL or SASL_SSL, or remove the TLS settings")
        return
    if bool(config.upstream_ssl_certfile) != bool(config.upstream_ssl_keyfile):
        yield "upstream_ssl_certfile/upstream_ssl_keyfile: a client certificate needs both (or neither)"
        return
    from tenantry.proxy.tls import TlsFileError, upstream_context  # the context reads the files: check them once

    try:
        upstream_context(config)
    except TlsFileError as exc:
        yield str(exc)


def _validate_identity(config: ProxyConfig) -> Iterator[str]:
    if config.upstream_identity not in ("auto", "service", "tenant"):
        yield f"upstream_identity: {config.upstream_identity!r} is not auto, service or tenant"
    if config.upstream_identity == "tenant" and not (config.tenants_enabled and config.upstream_sasl):
        yield ("upstream_identity: tenant needs tenants (a SASL listener) and a SASL upstream, whose "
               "service user provisions the tenants' broker users")


def _validate_numbers(config: ProxyConfig) -> Iterator[str]:
    for name in ("max_frame_bytes", "max_buffered_bytes", "max_in_flight", "quota_max_delay_ms",
                 "quota_tune_interval_ms", "sasl_max_receive_bytes", "max_buffered_bytes_before_login",
                 "login_timeout_ms", "health_check_interval_seconds", "probe_interval_seconds",
                 "encryption_data_key_max_age_seconds", "encryption_data_key_max_records"):
        if getattr(config, name) <= 0:
            yield f"{name}: must be positive, got {getattr(config, name)}"
    for name in ("upstream_connect_timeout_seconds", "shutdown_timeout_seconds", "sasl_session_lifetime_ms",
                 "auth_failure_delay_ms", "config_poll_seconds", "capacity_produce_bytes_per_sec",
                 "capacity_fetch_bytes_per_sec", "capacity_connections_per_sec", "quota_idle_seconds",
                 "max_connection_age_seconds", "metrics_label_limit", "max_buffered_bytes_per_tenant",
                 "max_unauthenticated_connections_per_ip", "unauthenticated_connections_per_ip_per_sec",
                 "encryption_key_cache_seconds"):
        if getattr(config, name) < 0:
            yield f"{name}: must not be negative, got {getattr(config, name)}"


def _validate_operations(config: ProxyConfig) -> Iterator[str]:
    if config.metrics_listen:
        split_host_port(config.metrics_listen, "metrics_listen")
    if config.log_format not in ("text", "json"):
        yield f"log_format: {config.log_format!r} is not text or json"
    if config.encryption_data_key_max_records > 1 << 32:  # random-salted counter nonces: stay far below GCM's bound
        yield "encryption_data_key_max_records: at most 4294967296 records per data key"
    if not 0 <= config.max_connection_age_jitter < 1:
        yield f"max_connection_age_jitter: {config.max_connection_age_jitter} is not between 0 and 1"
    if config.probe_tenants and config.listener_security_protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
        yield "probe_tenants: probes log in as a tenant's user with SASL, so they need a SASL listener"
    if config.quota_coordination not in ("local", "kafka"):
        yield f"quota_coordination: {config.quota_coordination!r} is not local or kafka"
    if config.workers < 1:
        yield f"workers: must be at least 1, got {config.workers}"
    elif config.workers > 1 and config.quota_coordination != "kafka":
        yield (f"workers: {config.workers} workers would each enforce every quota and connection limit in full; "
               "set quota_coordination = kafka so that they share them")
    if not _TOPIC.fullmatch(config.quota_coordination_topic):
        yield f"quota_coordination_topic: {config.quota_coordination_topic!r} is not a legal topic name"
    if config.quota_coordination_replication_factor < 0:
        yield "quota_coordination_replication_factor: a positive number, or 0 for three (or every broker if fewer)"
    if config.quota_coordination_retention_ms < 10 * config.quota_tune_interval_ms:
        yield "quota_coordination_retention_ms: at least 10 quota_tune_interval_ms, or reports vanish while read"
    if config.tenant_store not in ("file", "kafka"):
        yield f"tenant_store: {config.tenant_store!r} is not file or kafka"
    elif config.tenant_store == "kafka" and not config.tenants_enabled:
        yield "tenant_store: kafka stores tenants, which a PLAINTEXT (transparent) listener does not have"
    if not _TOPIC.fullmatch(config.tenant_store_topic):
        yield f"tenant_store_topic: {config.tenant_store_topic!r} is not a legal topic name"
    if config.tenant_store_replication_factor < 0:
        yield "tenant_store_replication_factor: a positive number, or 0 for three (or every broker if fewer)"
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        yield f"log_level: {config.log_level!r} is not DEBUG, INFO, WARNING or ERROR"


def salt_secret(config: ProxyConfig) -> bytes:
    """The key of invented SCRAM salts: the configured secret, or one derived from the service password."""
    source = config.sasl_salt_secret or config.upstream_sasl_password
    return hmac.new(b"tenantry: invented SCRAM salts", source.encode(), hashlib.sha256).digest()
