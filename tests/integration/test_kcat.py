"""kcat (librdkafka from Debian) through the proxy: metadata, produce, consume, consumer groups."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import unique

pytestmark = pytest.mark.integration


def kcat(*args: str, input_: str | None = None, timeout: float = 60) -> str:
    binary = shutil.which("kcat")
    assert binary, "kcat is installed by `make test` (Debian package kcat)"
    result = subprocess.run([binary, *args], input=input_, capture_output=True, text=True, timeout=timeout,
                            check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_metadata_lists_only_the_proxy(proxy):
    out = kcat("-b", proxy.bootstrap, "-L")
    broker_lines = [line for line in out.splitlines() if line.strip().startswith("broker ")]
    assert broker_lines
    assert all(f"127.0.0.1:{proxy.broker_port_base + 1}" in line for line in broker_lines), out


def test_produce_and_consume_with_keys(proxy):
    topic = unique("kcat")
    lines = [f"key{i}:value{i}" for i in range(20)]
    kcat("-b", proxy.bootstrap, "-t", topic, "-P", "-K:", "-X", "allow.auto.create.topics=true",
         input_="\n".join(lines) + "\n")
    out = kcat("-b", proxy.bootstrap, "-t", topic, "-C", "-e", "-o", "beginning", "-K:", "-f", "%k:%s\n")
    assert out.splitlines() == lines


def test_balanced_consumer_group_reads_everything(proxy):
    topic = unique("kcat-g")
    kcat("-b", proxy.bootstrap, "-t", topic, "-P", "-X", "allow.auto.create.topics=true",
         input_="".join(f"m{i}\n" for i in range(10)))
    out = kcat("-b", proxy.bootstrap, "-G", unique("kg"), "-X", "auto.offset.reset=earliest",
               "-c", "10", "-f", "%s\n", topic)
    assert sorted(out.split()) == sorted(f"m{i}" for i in range(10))
