"""SNI routing's names: broker N's host from the pattern, and the broker a handshake's name asks for."""

import pytest

from tenantry.proxy.config import ConfigError, load_config
from tenantry.proxy.sni import BrokerNames

NAMES = BrokerNames("broker-{id}.kafka.example.com")


def test_both_ways():
    assert NAMES.host(7) == "broker-7.kafka.example.com"
    assert NAMES.node("broker-7.kafka.example.com") == 7
    assert NAMES.node("BROKER-12.Kafka.Example.COM.") == 12  # DNS names are case-blind; a trailing dot is absolute


@pytest.mark.parametrize("name", [None, "", "bootstrap.kafka.example.com", "broker-.kafka.example.com",
                                  "broker-1.kafka.example.com.evil.net", "xbroker-1.kafka.example.com",
                                  "broker-1x.kafka.example.com", "broker-99999999999.kafka.example.com"])
def test_anything_else_is_the_bootstrap(name):
    assert NAMES.node(name) is None


@pytest.mark.parametrize("pattern", ["broker.kafka.example.com", "b-{id}-{id}.example.com"])
def test_a_pattern_holds_the_id_once(pattern):
    with pytest.raises(ValueError):
        BrokerNames(pattern)


def test_sni_needs_a_tls_listener():
    with pytest.raises(ConfigError, match=r"^sni_broker_host_pattern: needs a TLS listener"):
        load_config(None, {"upstream": "h:1", "listener_security_protocol": "PLAINTEXT",
                           "sni_broker_host_pattern": "broker-{id}.example.com"}, {})
