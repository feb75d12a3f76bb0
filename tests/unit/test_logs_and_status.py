"""Structured logs carry a connection's context; `tenantry status` renders a proxy's snapshot."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tenantry.proxy.config import ConfigError, load_config
from tenantry.proxy.logs import ConnectionLog, TextFormatter, json_formatter
from tenantry.proxy.status import render


def logged(formatter: logging.Formatter, context: dict[str, str], **extra: str) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test-{id(formatter)}")
    logger.addHandler(handler)
    logger.propagate = False
    ConnectionLog(logger, context).warning("refused %s", "it", extra=extra)
    logger.removeHandler(handler)
    return stream.getvalue().strip()


def test_json_lines_carry_tenant_user_client_id_and_api():
    line = logged(json_formatter(), {"peer": "1.2.3.4:5", "tenant": "acme", "user": "alice", "client_id": "app"},
                  api="Produce")
    record = json.loads(line)
    assert record["message"] == "refused it" and record["level"] == "WARNING"
    assert {k: record[k] for k in ("peer", "tenant", "user", "client_id", "api")} == {
        "peer": "1.2.3.4:5", "tenant": "acme", "user": "alice", "client_id": "app", "api": "Produce"}


def test_context_learned_later_shows_in_later_lines():
    context = {"peer": "1.2.3.4:5"}
    assert logged(TextFormatter(), context).endswith("refused it [peer=1.2.3.4:5]")
    context.update(tenant="acme", user="alice")
    assert logged(TextFormatter(), context).endswith("[peer=1.2.3.4:5 tenant=acme user=alice]")


def test_log_format_and_probe_settings_are_validated():
    base = {"upstream": ["127.0.0.1:9092"]}
    with pytest.raises(ConfigError, match="log_format"):
        load_config(overrides={**base, "log_format": "xml"})
    with pytest.raises(ConfigError, match="probe_tenants"):
        load_config(overrides={**base, "probe_tenants": "acme"})  # needs a SASL listener
    with pytest.raises(ConfigError, match="max_connection_age_jitter"):
        load_config(overrides={**base, "max_connection_age_jitter": "1.5"})
    with pytest.raises(ConfigError, match="metrics_listen"):
        load_config(overrides={**base, "metrics_listen": "nowhere"})


def test_status_table_shows_each_tenant_with_quota_use_against_its_limit():
    quota = {"rate": 0.0, "limit": None, "utilisation": None}
    status = {
        "ready": True, "connections": 3, "uptime_seconds": 61.0, "event_loop_lag_seconds": 0.0021,
        "tenants": [
            {"tenant": "", "connections": 1, "quotas": dict.fromkeys(("produce", "fetch", "requests"), quota),
             "throttle_seconds": {}},
            {"tenant": "acme", "connections": 2, "throttle_seconds": {"produce": 1.25},
             "quotas": {"produce": {"rate": 900_000.0, "limit": 1_000_000.0, "utilisation": 0.9},
                        "fetch": quota, "requests": {"rate": 12.0, "limit": None, "utilisation": None}}},
        ],
        "brokers": [{"broker": "1", "up": True, "connects": 4, "errors": {}},
                    {"broker": "2", "up": False, "connects": 0, "errors": {"connect": 3}}],
    }
    text = render(status)
    assert "ready: yes   connections: 3" in text and "event-loop lag: 2.1 ms" in text
    acme = next(line for line in text.splitlines() if line.startswith("acme"))
    assert "900.0 kB/s / 1.0 MB/s (90%)" in acme and "12 req/s" in acme and "1.2 s" in acme
    assert any(line.startswith("(not logged in)") for line in text.splitlines())
    assert "broker 2: DOWN, 0 connections opened, connect 3" in text
