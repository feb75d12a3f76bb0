"""Switches for tests only. Each weakens isolation; the proxy logs a warning at start when one is set."""

from __future__ import annotations

import os

#: Skip the proxy's own topic-id and fetch-session ownership checks, to show that the brokers alone refuse
#: cross-tenant access when the proxy logs in as each tenant's broker user (upstream_identity = "tenant").
SKIP_OWNERSHIP_CHECKS = os.environ.get("TENANTRY_TEST_ONLY_SKIP_OWNERSHIP_CHECKS") == "1"
