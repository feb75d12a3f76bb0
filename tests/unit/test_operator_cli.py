"""The operator's first hour: --version, config check, file edits that keep comments, reloads that say what
they did not apply, help for every flag."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from tenantry.proxy import cli
from tenantry.proxy.config import ConfigError, ProxyConfig, load_config
from tenantry.proxy.prelogin import PreLoginLimits
from tenantry.proxy.quota_book import QuotaBook
from tenantry.proxy.reload import LIVE_SETTINGS, apply_settings


def run(capsys, *argv: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        import io
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("tenantry ") and out.strip() != "tenantry"


def test_every_flag_and_argument_has_help_and_a_metavar_naming_its_shape(capsys):
    parser = cli.build_parser()
    seen = 0
    for action in _all_actions(parser):
        if action.dest in ("help", "version") or action.help == "==SUPPRESS==":
            continue
        seen += 1
        assert action.help, action.option_strings or action.dest
        if action.option_strings and action.nargs != 0 and not action.choices:
            assert action.metavar and action.metavar.upper() == action.metavar, action.option_strings
    assert seen > 60
    _, out, _ = run(capsys, "serve", "--help")
    assert "--login-timeout-ms MS" in out and "--listen HOST:PORT" in out and "--max-frame-bytes BYTES" in out


def _all_actions(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_actions(sub)
        else:
            yield action


def test_config_check_lists_every_problem_at_once_with_suggestions(tmp_path, capsys):
    config = tmp_path / "tenantry.toml"
    config.write_text('upstream = ["127.0.0.1:9092"]\nlisten_prot = 1\nmax_frame_bytes = -1\n'
                      'listener_security_protocol = "SASL_PLAINTEXT"\nsasl_salt_secret = "s"\n'
                      '[[tenants]]\nid = "acme"\nallow_auto_create_topic = true\n[[tenants]]\nid = "Bad"\n')
    code, _, err = run(capsys, "config", "check", str(config))
    assert code == 1
    assert "listen_prot: unknown setting" in err and "did you mean 'listen'" in err
    assert "max_frame_bytes: must be positive" in err
    assert "did you mean 'allow_auto_create_topics'" in err and "tenant 'Bad'" in err
    assert "4 problems" in err


def test_config_check_passes_a_good_file(tmp_path, capsys):
    config = tmp_path / "tenantry.toml"
    config.write_text('upstream = ["127.0.0.1:9092"]\nlistener_security_protocol = "SASL_PLAINTEXT"\n'
                      'sasl_salt_secret = "s"\n[[tenants]]\nid = "acme"\n')
    code, out, _ = run(capsys, "config", "check", str(config))
    assert code == 0 and "OK (1 tenants, 0 users, listener SASL_PLAINTEXT)" in out


def test_a_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match=r"max_in_flight \(environment variable TENANTRY_MAX_IN_FLIGHT\)"):
        load_config(None, {"upstream": ["127.0.0.1:9092"]}, {"TENANTRY_MAX_IN_FLIGHT": "lots"})


def test_the_old_names_of_renamed_settings_still_work_with_a_warning(tmp_path, caplog):
    config = tmp_path / "tenantry.toml"
    config.write_text('upstream = ["127.0.0.1:9092"]\nshutdown_timeout = 3\n')
    with caplog.at_level(logging.WARNING):
        assert load_config(config, environ={}).shutdown_timeout_seconds == 3
    assert "shutdown_timeout is deprecated: it is now shutdown_timeout_seconds" in caplog.text


def test_tenant_edits_keep_the_operators_comments(tmp_path, capsys, monkeypatch):
    config = tmp_path / "tenantry.toml"
    config.write_text('# who to call: ops@example.com\nlisten = "127.0.0.1:19092"  # the bootstrap port\n\n'
                      '[[tenants]]\nid = "acme"  # the first customer\n')
    assert run(capsys, "tenant", "add", "globex", "--config", str(config), "--allow-auto-create-topics")[0] == 0
    assert run(capsys, "user", "add", "globex", "bob", "--config", str(config), stdin="pw\n",
               monkeypatch=monkeypatch)[0] == 0
    text = config.read_text()
    assert "# who to call: ops@example.com" in text and "# the bootstrap port" in text
    assert "# the first customer" in text and "allow_auto_create_topics = true" in text
    code, out, _ = run(capsys, "tenant", "list", "--config", str(config))
    assert code == 0 and "globex" in out and "bob" in out


def test_reading_a_missing_file_is_an_error_and_adding_a_tenant_creates_it(tmp_path, capsys):
    missing = tmp_path / "nope.toml"
    code, _, err = run(capsys, "tenant", "list", "--config", str(missing))
    assert code == 1 and "no such file" in err and not missing.exists()
    code, _, err = run(capsys, "user", "remove", "acme", "x", "--config", str(missing))
    assert code == 1 and "no such file" in err
    code, out, err = run(capsys, "tenant", "add", "acme", "--config", str(missing))
    assert code == 0 and "creating it" in err and "added tenant acme" in out and missing.exists()


@pytest.mark.parametrize(("given", "url"), [("0.0.0.0:9404", "http://127.0.0.1:9404"),
                                             ("proxy.internal:9404", "http://proxy.internal:9404"),
                                             ("[::]:9404", "http://[::1]:9404"),
                                             ("http://10.0.0.5:9404/", "http://10.0.0.5:9404")])
def test_status_url_accepts_host_port_like_metrics_listen(given, url):
    assert cli.status_url(given) == url


def test_a_reload_applies_live_settings_and_warns_about_the_rest(tmp_path, caplog):
    running = ProxyConfig(upstream=["127.0.0.1:9092"], log_level="INFO")
    server = SimpleNamespace(config=running, quotas=QuotaBook(running), prelogin=PreLoginLimits(running))
    new = ProxyConfig(upstream=["127.0.0.1:9092"], log_level="DEBUG", quota_max_delay_ms=2500,
                      max_unauthenticated_connections_per_ip=7, max_frame_bytes=1 << 20,
                      listen="127.0.0.1:29092")
    root = logging.getLogger()
    level = root.level
    try:
        with caplog.at_level(logging.INFO, logger="tenantry.reload"):
            applied = apply_settings(server, new, tmp_path / "tenantry.toml")  # type: ignore[arg-type]
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(level)
    assert set(applied) == {"log_level", "quota_max_delay_ms", "max_unauthenticated_connections_per_ip"}
    assert server.quotas.max_delay == 2.5 and server.prelogin.max_per_ip == 7
    assert running.max_frame_bytes != 1 << 20 and running.listen == "127.0.0.1:19092"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith("max_frame_bytes changed") and "only a restart" in w for w in warnings)
    assert any(w.startswith("listen changed") for w in warnings)
    assert set(ProxyConfig.__dataclass_fields__) >= LIVE_SETTINGS


def test_help_and_docs_name_the_new_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "config" in out
    assert "tenantry config check" in Path("README.md").read_text()


def test_tenant_set_turns_acls_on_names_admins_and_is_refused_when_wrong(tmp_path, capsys):
    from tenantry.tenants.store import load_registry

    config = tmp_path / "tenantry.toml"
    assert run(capsys, "tenant", "add", "acme", "--config", str(config))[0] == 0
    code, out, _ = run(capsys, "tenant", "set", "acme", "--authorization", "acls", "--admin-users", "alice,ops",
                       "--config", str(config))
    assert code == 0 and "authorization acls, admin users: alice, ops" in out
    tenant = load_registry(config).tenants["acme"]
    assert tenant.authorization == "acls" and tenant.admin_users == {"alice", "ops"}
    assert tenant.checks_acls_of("bob") and not tenant.checks_acls_of("alice")
    assert not tenant.checks_acls_of("tenantry:probe:acme")  # the end-to-end probe's own topic and group
    assert "authorization acls, admins: alice, ops, 0 ACLs" in run(capsys, "tenant", "list", "--config",
                                                                 str(config))[1]
    code, _, err = run(capsys, "tenant", "set", "acme", "--config", str(config))
    assert code == 1 and "--authorization or --admin-users" in err
    code, _, err = run(capsys, "tenant", "set", "acme", "--admin-users", "bad name", "--config", str(config))
    assert code == 1 and "admin_users" in err
    code, _, err = run(capsys, "tenant", "set", "acme", "--authorization", "closed", "--config", str(config))
    assert code == 2 and "invalid choice" in err
    assert run(capsys, "tenant", "set", "acme", "--admin-users", "", "--config", str(config))[0] == 0
    assert load_registry(config).tenants["acme"].admin_users == frozenset()


def test_acls_in_the_file_are_validated_with_the_tenant_named(tmp_path):
    from tenantry.tenants.registry import Registry, RegistryError

    entry = {"id": "acme", "authorization": "acls", "acls": [
        {"resource_type": "TOPIC", "name": "orders", "principal": "User:bob", "operation": "READ"}]}
    tenant = Registry.from_config({"tenants": [entry]}).tenants["acme"]
    assert len(tenant.acls.bindings) == 1 and tenant.acls.bindings[0].permission.name == "ALLOW"
    assert Registry(dict(acme=tenant)).to_config()[0]["acls"][0]["host"] == "*"
    with pytest.raises(RegistryError, match=r"tenant acme acls: .*does not apply"):
        Registry.from_config({"tenants": [{**entry, "acls": [{**entry["acls"][0], "operation": "CLUSTER_ACTION"}]}]})
    with pytest.raises(RegistryError, match="authorization must be one of open, acls"):
        Registry.from_config({"tenants": [{**entry, "authorization": "closed"}]})


def test_encryption_commands_edit_the_tenant_and_refuse_a_file_without_a_key_store(tmp_path, capsys):
    import json
    import stat

    config = tmp_path / "tenantry.toml"
    assert run(capsys, "tenant", "add", "acme", "--config", str(config))[0] == 0
    code, _, err = run(capsys, "encryption", "enable", "acme", "--topics", "pay.*", "--config", str(config))
    assert code == 1 and "no encryption_key_store is set" in err and "encryption" not in config.read_text()
    keys = tmp_path / "keys" / "tenant-keys.json"
    code, out, _ = run(capsys, "encryption", "enable", "acme", "--topics", "pay.*,pii", "--key-store", str(keys),
                       "--config", str(config))
    assert code == 0 and "encrypted topics: pay.*, pii" in out
    assert run(capsys, "encryption", "disable", "acme", "--topics", "pii", "--config", str(config))[0] == 0
    code, out, _ = run(capsys, "encryption", "show", "acme", "--config", str(config))
    assert "sealed and opened: pay.*; opened only: pii" in out
    first = run(capsys, "encryption", "rotate", "acme", "--config", str(config))[1].split()[-3]
    second = run(capsys, "encryption", "rotate", "acme", "--config", str(config))[1].split()[-3]
    stored = json.loads(keys.read_text())["tenants"]["acme"]
    assert first != second and stored["current"] == second and set(stored["keys"]) == {first, second}
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert run(capsys, "encryption", "rotate", "nobody", "--config", str(config))[0] == 1


def test_config_check_refuses_encryption_without_a_key_store(tmp_path, capsys):
    config = tmp_path / "tenantry.toml"
    config.write_text('upstream = ["127.0.0.1:9092"]\nlistener_security_protocol = "SASL_PLAINTEXT"\n'
                      'sasl_salt_secret = "s"\n[[tenants]]\nid = "acme"\n[tenants.encryption]\ntopics = ["pay.*"]\n')
    code, _, err = run(capsys, "config", "check", str(config))
    assert code == 1 and "encryption_key_store: not set, but tenant acme has encryption topics" in err
