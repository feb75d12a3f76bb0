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
