"""Rewrite the golden files from what the rewriter does today: `python -m tests.golden.regenerate`.

Run it only when a change to the rewriting is intended, and read the diff before committing it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tenantry.protocol.messages import API_NAMES
from tests.golden.harness import cases_for, tenant_apis

HERE = Path(__file__).parent / "apis"


def golden_path(api_key: int) -> Path:
    return HERE / f"{api_key:02d}-{API_NAMES[api_key]}.yaml"


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for key in tenant_apis():
        data = {"api": API_NAMES[key], "api_key": key, "cases": cases_for(key)}
        golden_path(key).write_text(yaml.safe_dump(data, sort_keys=False, width=120))
    print(f"wrote {len(tenant_apis())} golden files into {HERE}")


if __name__ == "__main__":
    main()
