"""`tenantry config check FILE`: everything wrong with a config file, all at once, before a deploy."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tenantry.proxy.config import ConfigError, load_config, read_file, require_listener
from tenantry.proxy.tenant_checks import setup_problems
from tenantry.tenants.registry import Registry, RegistryError


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="check a config file")
    csub = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    check = csub.add_parser("check", help="validate a config file as `tenantry serve` would (with the TENANTRY_* "
                                          "environment variables set here) and print every problem")
    check.add_argument("file", metavar="FILE", nargs="?", default=os.environ.get("TENANTRY_CONFIG"),
                       help="the proxy's TOML config file (default: env TENANTRY_CONFIG)")


def run(args: argparse.Namespace) -> int:
    if not args.file:
        print("tenantry: give a FILE or set TENANTRY_CONFIG", file=sys.stderr)
        return 2
    problems, summary = check(Path(args.file))
    for problem in problems:
        print(f"{args.file}: {problem}", file=sys.stderr)
    if problems:
        print(f"{args.file}: {len(problems)} problem{'s' if len(problems) > 1 else ''}", file=sys.stderr)
        return 1
    print(f"{args.file}: OK ({summary})")
    return 0


def check(path: Path) -> tuple[list[str], str]:
    """Every problem in the file's settings and tenants, and a one-line summary of what it defines."""
    try:
        data = read_file(path)
    except ConfigError as exc:
        return exc.problems, ""
    problems: list[str] = []
    config = None
    try:
        config = load_config(path)
        require_listener(config)
    except ConfigError as exc:
        problems += exc.problems
    tenant_problems, registry = _tenant_problems(data)
    problems += tenant_problems
    if config is not None and registry is not None:
        problems += [f"probe_tenants: no tenant {t}" for t in config.probe_tenants if t not in registry.tenants]
        problems += setup_problems(config, registry)  # record encryption: a key store, and a readable one
    users = sum(len(t.users) for t in registry.tenants.values()) if registry is not None else 0
    tenants = len(registry.tenants) if registry is not None else 0
    listener = config.listener_security_protocol if config is not None else "?"
    return problems, f"{tenants} tenants, {users} users, listener {listener}"


def _tenant_problems(data: dict[str, Any]) -> tuple[list[str], Registry | None]:
    """Each tenant is checked on its own, so one bad tenant does not hide another's problems."""
    problems = []
    for entry in data.get("tenants", []):
        try:
            Registry.from_config({**data, "tenants": [entry]})
        except RegistryError as exc:
            problems.append(str(exc))
    if problems:
        return problems, None
    try:
        return [], Registry.from_config(data)
    except RegistryError as exc:  # what only shows across tenants: overlapping prefixes, shared users
        return [str(exc)], None
