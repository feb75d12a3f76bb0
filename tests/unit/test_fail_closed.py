"""The proxy fails closed: it never serves a transparent listener unless that was chosen explicitly."""

from __future__ import annotations

import pytest

from tenantry.proxy.cli import main
from tenantry.proxy.config import ConfigError, load_config, require_listener

TENANTS = '[[tenants]]\nid = "acme"\nprefix = "acme."\nusers = []\n'


def test_serving_without_a_listener_choice_refuses_to_start_naming_the_setting(capsys):
    assert main(["serve", "--upstream", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "listener_security_protocol: not set" in err and "SASL_PLAINTEXT" in err and "PLAINTEXT" in err


def test_a_config_file_with_tenants_and_no_listener_refuses_to_start(tmp_path):
    path = tmp_path / "tenantry.toml"
    path.write_text('upstream = ["127.0.0.1:9"]\n' + TENANTS)
    with pytest.raises(ConfigError, match=r"listener_security_protocol: .* defines tenants"):
        load_config(path, {}, {})


def test_tenants_on_an_explicit_plaintext_listener_refuse_to_start(tmp_path):
    path = tmp_path / "tenantry.toml"
    path.write_text('upstream = ["127.0.0.1:9"]\nlistener_security_protocol = "PLAINTEXT"\n' + TENANTS)
    with pytest.raises(ConfigError, match=r"listener_security_protocol: .* without credentials"):
        load_config(path, {}, {})


def test_a_transparent_proxy_is_chosen_with_plaintext():
    config = load_config(None, {"upstream": "127.0.0.1:9", "listener_security_protocol": "PLAINTEXT"}, {})
    require_listener(config)
    assert not config.tenants_enabled


def test_tenants_with_a_sasl_listener_are_served(tmp_path):
    path = tmp_path / "tenantry.toml"
    path.write_text('upstream = ["127.0.0.1:9"]\nlistener_security_protocol = "SASL_PLAINTEXT"\n'
                    'sasl_salt_secret = "s3cret"\n' + TENANTS)
    assert load_config(path, {}, {}).tenants_enabled


def test_tenants_without_a_salt_secret_or_a_service_password_refuse_to_start(tmp_path):
    path = tmp_path / "tenantry.toml"
    path.write_text('upstream = ["127.0.0.1:9"]\nlistener_security_protocol = "SASL_PLAINTEXT"\n' + TENANTS)
    with pytest.raises(ConfigError, match="sasl_salt_secret: not set"):
        load_config(path, {}, {})
