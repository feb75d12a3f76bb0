"""A small fixed sample of `make fuzz` (tests/fuzz.py) against the session's tenant proxy."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from tests.fuzz import fuzz, mutate, seeds

from .conftest import TENANT_USERS

pytestmark = pytest.mark.integration


def test_every_tenant_api_has_a_seed_frame():
    assert len(seeds()) >= 35


def test_mutation_is_deterministic_for_a_seed():
    import random

    base = seeds()[0]
    assert mutate(random.Random(7), base) == mutate(random.Random(7), base)


def test_a_fixed_sample_of_mutated_frames_leaves_the_proxy_serving_and_leaks_nothing(tenant_proxy):
    process = psutil.Process(tenant_proxy.process.pid)
    time.sleep(0.5)
    fds = process.num_fds()
    tally = asyncio.run(fuzz(tenant_proxy.bootstrap, 1_000, seed=20261201, login=("bob", TENANT_USERS["bob"][2])))
    assert tally.frames == 1_000 and tally.logged_in > 0 and not tally.errors, tally.errors[:3]
    deadline = time.monotonic() + 30
    while process.num_fds() > fds and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tenant_proxy.process.poll() is None
    assert process.num_fds() <= fds
    log = tenant_proxy.log_text()
    assert "Traceback" not in log and "never retrieved" not in log
