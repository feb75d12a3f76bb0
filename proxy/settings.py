"""The table of the proxy's settings: every field with its default and help, from which the file keys,
the TENANTRY_* variables and the flags all derive (loading and validation: :mod:`tenantry.proxy.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL")
LISTENER_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LISTENER_MECHANISMS = (*SASL_MECHANISMS, "OAUTHBEARER")


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
    sni_broker_host_pattern: str = field(default="", metadata=_opt(
        "Serve every broker on the listen port of a TLS listener, told apart by the host name clients ask for "
        "(SNI): broker N is advertised as this pattern with {id} replaced by N, e.g. broker-{id}.kafka.example.com; "
        "other names reach the bootstrap. Empty: a port per broker."))
    listener_security_protocol: str = field(default="", metadata=_opt(
        "Required. SASL_PLAINTEXT or SASL_SSL: clients log in as users of the tenants in the config file, "
        "each in its own namespace. SSL: clients log in with a certificate (mTLS), whose subject "
        "ssl_principal_mapping_rules turn into a tenant's user. PLAINTEXT: no tenants and no logins, every "
        "client sees the whole cluster (a transparent proxy, for trusted networks only)."))
    ssl_certfile: str = field(default="", metadata=_opt(
        "PEM certificate chain for SASL_SSL and SSL listeners (re-read on SIGHUP)."))
    ssl_keyfile: str = field(default="", metadata=_opt("PEM private key for ssl_certfile."))
    ssl_cafile: str = field(default="", metadata=_opt(
        "PEM file of the CA certificates clients' certificates must chain to (required by SSL listeners)."))
    ssl_principal_mapping_rules: str = field(default="DEFAULT", metadata=_opt(
        "How an SSL listener turns a client certificate's subject (RFC 2253, \"CN=alice,O=Example\") into a "
        "user name, as Kafka's ssl.principal.mapping.rules: RULE:pattern/replacement/[L|U],...,DEFAULT."))
    sasl_enabled_mechanisms: list[str] = field(default_factory=lambda: ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"],
                                               metadata=_opt("SASL mechanisms clients may use, comma-separated."))
    sasl_oauthbearer_jwks_endpoint_url: str = field(default="", metadata=_opt(
        "With OAUTHBEARER among sasl_enabled_mechanisms: the identity provider's JWKS, whose keys must have "
        "signed clients' tokens (fetched when a token names a key not yet known, and every hour)."))
    sasl_oauthbearer_expected_issuer: str = field(default="", metadata=_opt(
        "The \"iss\" clients' tokens must carry (required with OAUTHBEARER)."))
    sasl_oauthbearer_expected_audience: list[str] = field(default_factory=list, metadata=_opt(
        "Audiences (\"aud\") of which clients' tokens must carry one, comma-separated (required with OAUTHBEARER)."))
    sasl_oauthbearer_user_claim: str = field(default="sub", metadata=_opt(
        "The token claim that names the user."))
    sasl_oauthbearer_tenant_claim: str = field(default="", metadata=_opt(
        "The token claim that names the tenant; then the identity provider decides who belongs where, and "
        "users need not be in the config file. Empty: the tenant whose user the user claim names."))
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
        "PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL, for the proxy's own connections to the brokers."))
    upstream_ssl_cafile: str = field(default="", metadata=_opt(
        "PEM file of the CA certificates the brokers' certificates must chain to, with SSL and SASL_SSL "
        "(default: the system's trust store). Re-read on SIGHUP."))
    upstream_ssl_certfile: str = field(default="", metadata=_opt(
        "PEM certificate chain the proxy presents to the brokers (mTLS), with upstream_ssl_keyfile. Re-read on "
        "SIGHUP."))
    upstream_ssl_keyfile: str = field(default="", metadata=_opt("PEM private key of upstream_ssl_certfile."))
    upstream_ssl_key_password: str = field(default="", repr=False, metadata=_opt(
        "Password of an encrypted upstream_ssl_keyfile; prefer TENANTRY_UPSTREAM_SSL_KEY_PASSWORD.", secret=True))
    upstream_ssl_check_hostname: bool = field(default=True, metadata=_opt(
        "Check that each broker's certificate names the host the proxy connects to, as Kafka's "
        "ssl.endpoint.identification.algorithm=https does (true or false; the chain is verified either way)."))
    upstream_sasl_mechanism: str = field(default="SCRAM-SHA-512", metadata=_opt(
        "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, with upstream_security_protocol SASL_PLAINTEXT or "
        "SASL_SSL. With OAUTHBEARER, upstream_sasl_username and _password are the OAuth client id and secret."))
    upstream_sasl_oauthbearer_token_endpoint_url: str = field(default="", metadata=_opt(
        "With upstream_sasl_mechanism OAUTHBEARER: where the proxy gets its tokens (the client-credentials "
        "grant of KIP-768); each is used for four fifths of its lifetime, then replaced."))
    upstream_sasl_oauthbearer_scope: str = field(default="", metadata=_opt(
        "The scope the proxy asks its tokens for (empty: none)."))
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
    quota_coordination: str = field(default="local", metadata=_opt(
        "local: every quota, connection limit and capacity is this process's own (a tenant on three replicas "
        "gets three times its quota). kafka: the replicas publish their use every quota_tune_interval_ms to "
        "quota_coordination_topic on the upstream cluster and each enforces its slice, so that the fleet "
        "together holds every tenant to its quotas and the capacities hold cluster-wide. Required by "
        "workers > 1."))
    quota_coordination_topic: str = field(default="__tenantry_fleet", metadata=_opt(
        "The upstream topic of the replicas' reports (one partition), created by the service user if missing; "
        "no tenant's namespace can name it."))
    quota_coordination_replication_factor: int = field(default=0, metadata=_opt(
        "Replication of quota_coordination_topic when the proxy creates it (0: three, or every broker of a "
        "smaller cluster)."))
    quota_coordination_retention_ms: int = field(default=600_000, metadata=_opt(
        "retention.ms of quota_coordination_topic when the proxy creates it: reports older than a few intervals "
        "are never read again."))
    tenant_store: str = field(default="file", metadata=_opt(
        "Where tenants, users, quotas, limits, ACLs and encryption settings live: file (the config file's "
        "[[tenants]]) or kafka (the compacted tenant_store_topic on the upstream cluster, which every replica "
        "follows; change it with the CLI's --store kafka)."))
    tenant_store_topic: str = field(default="__tenantry_tenants", metadata=_opt(
        "The compacted upstream topic of the tenant store (one partition), created by the service user if missing."))
    tenant_store_replication_factor: int = field(default=0, metadata=_opt(
        "Replication of tenant_store_topic when it is created (0: three, or every broker of a smaller cluster)."))
    workers: int = field(default=1, metadata=_opt(
        "Processes serving the same listeners (SO_REUSEPORT), each with its own event loop and, with "
        "metrics_listen, its own admin port (the port + its index from 0); they share quotas through "
        "quota_coordination = kafka. The parent restarts a worker that dies and drains them all on SIGTERM."))
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
    encryption_key_store: str = field(default="", metadata=_opt(
        "Record encryption: the local key store file holding each tenant's key-encryption keys (created on first "
        "use, mode 0600; for tests and small setups: back it up, and give every replica the same file). "
        "Required when any tenant has encryption topics.", metavar="PATH"))
    encryption_data_key_max_age_seconds: float = field(default=3600.0, metadata=_opt(
        "Record encryption: a topic's data key is replaced after this long."))
    encryption_data_key_max_records: int = field(default=1 << 24, metadata=_opt(
        "Record encryption: a topic's data key is replaced after sealing this many records."))
    encryption_key_cache_seconds: float = field(default=600.0, metadata=_opt(
        "Record encryption: how long an unwrapped data key is kept in memory for reading."))
    probe_tenants: list[str] = field(default_factory=list, metadata=_opt(
        "Tenants to probe end to end: the proxy produces and consumes through its own listener as a "
        "hidden user of each, and exports availability and latency (comma-separated)."))
    probe_interval_seconds: float = field(default=10.0, metadata=_opt(
        "Seconds between two end-to-end probe messages of a tenant."))

    @property
    def tenants_enabled(self) -> bool:
        return self.listener_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL", "SSL")

    @property
    def listen_host(self) -> str:
        return split_host_port(self.listen, "listen")[0]

    @property
    def listen_port(self) -> int:
        return split_host_port(self.listen, "listen")[1]

    def broker_port(self, node_id: int) -> int:
        return self.broker_port_base + node_id

    @property
    def upstream_sasl(self) -> bool:
        """Whether the proxy logs in to the brokers (SASL_PLAINTEXT or SASL_SSL)."""
        return self.upstream_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def upstream_tls(self) -> bool:
        return self.upstream_security_protocol in ("SSL", "SASL_SSL")

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
