"""Configuration: file < environment < flags, and every mistake is named with its field."""

import pytest

from tenantry.proxy.config import ConfigError, load_config


def test_flags_beat_environment_beat_file(tmp_path):
    path = tmp_path / "tenantry.toml"
    path.write_text('upstream = ["file:9092"]\nlisten = "127.0.0.1:1000"\nmax_in_flight = 7\n')
    config = load_config(path, {"listen": "127.0.0.1:3000"},
                         {"TENANTRY_LISTEN": "127.0.0.1:2000", "TENANTRY_MAX_IN_FLIGHT": "9"})
    assert config.upstream == ["file:9092"]
    assert config.listen == "127.0.0.1:3000"
    assert config.max_in_flight == 9


def test_no_file_needed():
    config = load_config(None, {"upstream": "127.0.0.1:9092,127.0.0.1:9093", "listen": "0.0.0.0:19092"}, {})
    assert config.upstream_addresses() == [("127.0.0.1", 9092), ("127.0.0.1", 9093)]
    assert config.advertised_host == "127.0.0.1"
    assert config.broker_port_base == 19093
    assert config.broker_port(2) == 19095


@pytest.mark.parametrize(("overrides", "field"), [
    ({}, "upstream"),
    ({"upstream": "nohostport"}, "upstream"),
    ({"upstream": "h:1", "listen": "h:99999"}, "listen"),
    ({"upstream": "h:1", "upstream_security_protocol": "TLS"}, "upstream_security_protocol"),
    ({"upstream": "h:1", "upstream_security_protocol": "SASL_PLAINTEXT"}, "upstream_sasl_username"),
    ({"upstream": "h:1", "max_frame_bytes": "0"}, "max_frame_bytes"),
    ({"upstream": "h:1", "max_in_flight": "many"}, "max_in_flight"),
    ({"upstream": "h:1", "log_level": "LOUD"}, "log_level"),
])
def test_bad_values_fail_naming_the_field(overrides, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        load_config(None, overrides, {})


def test_unknown_file_key_is_refused(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('upstream = ["h:1"]\nlisten_port = 5\n')
    with pytest.raises(ConfigError, match="listen_port: unknown setting"):
        load_config(path, {}, {})


def test_broken_toml_is_refused(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("upstream = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, {}, {})


def test_secrets_are_masked_in_the_redacted_view():
    config = load_config(None, {"upstream": "h:1", "upstream_security_protocol": "SASL_PLAINTEXT",
                                "upstream_sasl_username": "svc"}, {"TENANTRY_UPSTREAM_SASL_PASSWORD": "hunter2"})
    assert config.redacted()["upstream_sasl_password"] == "***"
    assert "hunter2" not in repr(config.redacted())

