"""Shared helpers for client tests: waiting without fixed sleeps, and who talks to the broker."""

from __future__ import annotations

import time
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
