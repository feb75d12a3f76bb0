"""Golden tests: for every API offered to tenants, a request and its response through each of two
tenants' rewriters, compared with the recorded frames in tests/golden/apis/ (no broker).

A failure prints the field-by-field difference. If the change is intended, run
`python -m tests.golden.regenerate` and review the diff of the YAML files.
"""

from __future__ import annotations

import pytest
import yaml

from tests.golden.harness import cases_for, tenant_apis
from tests.golden.regenerate import golden_path


@pytest.mark.parametrize("api_key", sorted(tenant_apis()), ids=lambda k: golden_path(k).stem)
def test_rewriting_matches_the_golden_file(api_key: int) -> None:
    recorded = yaml.safe_load(golden_path(api_key).read_text())
    assert recorded["api_key"] == api_key
    cases = cases_for(api_key)
    assert len(cases) == len(recorded["cases"])
    for now, then in zip(cases, recorded["cases"], strict=True):
        assert now == then


def test_every_api_offered_to_tenants_has_a_golden_file() -> None:
    files = {p.name for p in golden_path(0).parent.glob("*.yaml")}
    assert files == {golden_path(k).name for k in tenant_apis()}


def test_goldens_show_listings_filtered_and_names_prefixed() -> None:
    listing = next(c for c in cases_for(16) if c.get("listing"))
    assert [g["group_id"] for g in listing["response"]["in"]["groups"]] == ["acme.billing", "initech.billing"]
    assert [g["group_id"] for g in listing["response"]["out"]["groups"]] == ["billing"]
    produce = cases_for(0)[-1]
    assert produce["tenant"] == "globex"
    assert produce["request"]["out"]["topic_data"][0].get("name") in ("globex.orders", "")
