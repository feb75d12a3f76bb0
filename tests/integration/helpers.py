"""Shared helpers for client tests: waiting without fixed sleeps, and who talks to the broker."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

import psutil

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def broker_clients(broker_ports: set[int]) -> set[int]:
    """PIDs of every process with an established TCP connection to one of the broker's ports."""
    pids = set()
    for conn in psutil.net_connections(kind="tcp"):
        if conn.raddr and conn.raddr.port in broker_ports and conn.status == psutil.CONN_ESTABLISHED:
            pids.add(conn.pid)
    return pids


def assert_two_members_split_four_partitions(settings: dict[str, object], topic: str) -> None:
    """Two consumers of one group on a 4-partition topic: the first gets all, then they split 2 and 2."""
    from confluent_kafka import Consumer

    first, second = Consumer(settings), Consumer(settings)
    try:
        first.subscribe([topic])
        wait_for(lambda: first.poll(0.2) is None and len(first.assignment()) == 4, 60, "first member gets 4")
        second.subscribe([topic])

        def split() -> bool:
            first.poll(0.1)
            second.poll(0.1)
            return len(first.assignment()) == 2 and len(second.assignment()) == 2
        wait_for(split, 90, "the four partitions split between two members")
        assigned = first.assignment() + second.assignment()
        assert {(p.topic, p.partition) for p in assigned} == {(topic, n) for n in range(4)}
    finally:
        first.close()
        second.close()


def readiness(metrics: str) -> tuple[int, dict[str, object]]:
    """The proxy's /readyz status and body, from its metrics_listen HOST:PORT."""
    try:
        with urllib.request.urlopen(f"http://{metrics}/readyz", timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)
