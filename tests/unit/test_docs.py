"""The README documents every configuration field, flag and environment variable."""

from dataclasses import fields
from pathlib import Path

from tenantry.proxy.config import ProxyConfig, env_name

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_config_field_is_documented_with_its_flag_and_variable():
    for f in fields(ProxyConfig):
        assert f"`{f.name}`" in README, f.name
        assert f"`--{f.name.replace('_', '-')}`" in README, f.name
        assert f"`{env_name(f.name)}`" in README, f.name


def test_quickstart_is_the_two_make_commands():
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    assert "make demo" in quickstart and "make test" in quickstart


def test_the_quota_example_is_a_valid_config_that_documents_every_quota_and_limit():
    import tomllib

    from tenantry.tenants.limits import Limits
    from tenantry.tenants.quotas import QuotaSpec
    from tenantry.tenants.registry import Registry

    section = README.split("## Quotas and guard rails", 1)[1]
    example = tomllib.loads(section.split("```toml", 1)[1].split("```", 1)[0])
    example["tenants"][0]["users"] = [{"name": "batch-loader", "credentials": {}}]
    acme = Registry.from_config(example).tenants["acme"]
    assert acme.quotas.produce_bytes_per_sec == 20_000_000 and acme.quotas.max_connections == 200
    assert acme.user_quotas["batch-loader"].produce_bytes_per_sec == 2_000_000
    assert acme.limits.max_topics == 200 and acme.limits.replication_factor == 3
    for f in fields(QuotaSpec) + fields(Limits):
        assert f"`{f.name}`" in section or f"{f.name} =" in section, f.name


def test_every_metric_the_proxy_serves_is_in_the_readme_table():
    from tenantry.proxy.config import load_config
    from tenantry.proxy.metrics import build_registry, take_view
    from tenantry.proxy.probe import PROBE_FAMILIES
    from tenantry.proxy.server import ProxyServer
    from tenantry.tenants.registry import Registry

    server = ProxyServer(load_config(overrides={"upstream": ["127.0.0.1:9092"]}), Registry())
    server.stats.label_limit = 1
    families = build_registry(take_view(server)).collect()
    names = {m.name for m in families if m.name.startswith("tenantry_")} | PROBE_FAMILIES
    table = README.split("### Metrics", 1)[1].split("### Logs", 1)[0]
    for name in names:
        for prefix in ("tenantry_client_id_", "tenantry_topic_"):  # documented as one row with {a,b,...}
            if name.startswith(prefix):
                assert name.removeprefix(prefix) in table.split(prefix, 1)[1].split("}", 1)[0], name
                break
        else:
            assert f"`{name}`" in table or f"`{name}_total`" in table, name
