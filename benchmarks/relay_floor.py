"""The floor for any Python proxy on this machine: a bare uvloop TCP relay that parses nothing.

    python -m benchmarks.relay_floor

Runs sequential Produce round trips (one request in flight) straight to the broker, through this
relay, and through Tenantry (transparent, and in tenant mode with SCRAM-SHA-512 and quotas), and
prints the median and p99 added per round trip, and the relay's and the proxy's CPU per request, the
median of rounds that alternate between the paths. What Tenantry adds beyond the relay is the cost of
understanding Kafka; what the relay adds is the cost of Python, the event loop and two more socket hops.

Then it streams 1 GB one way through the same relay and through a relay that moves the bytes with
splice(2), so they never enter user space, and prints each one's CPU seconds per GB: the floor of
any proxy that copies what it forwards (whatever its language) against the floor of zero-copy.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from benchmarks.harness import BENCH_PASSWORD, NON_BINDING_QUOTAS, Bench, tenants_config
from benchmarks.rawkafka import Connection, metadata_request, produce_body, record_batch
from tenantry.localkafka import DEFAULT_VERSION, KafkaBroker
from tenantry.localkafka.broker import free_port

RELAY = r'''
import asyncio, sys, uvloop
class Pipe(asyncio.Protocol):
    def __init__(self, peer=None): self.peer, self.transport, self.early = peer, None, []
    def connection_made(self, t): self.transport = t
    def data_received(self, data):
        if self.peer is None: self.early.append(data)  # read before the broker side was up
        else: self.peer.transport.write(data)
    def connection_lost(self, exc):
        if self.peer and self.peer.transport: self.peer.transport.close()
async def main(listen, host, port):
    loop = asyncio.get_running_loop()
    async def accept(reader_unused=None): pass
    class Front(Pipe):
        def connection_made(self, t):
            super().connection_made(t); t.pause_reading()
            async def back():
                _, self.peer = await loop.create_connection(lambda: Pipe(self), host, port)
                for data in self.early: self.peer.transport.write(data)
                t.resume_reading()
            loop.create_task(back())
    server = await loop.create_server(Front, "127.0.0.1", listen)
    await server.serve_forever()
uvloop.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
'''

SPLICE_RELAY = r'''
import fcntl, os, socket, sys
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
client, _ = listener.accept()
upstream = socket.create_connection((sys.argv[2], int(sys.argv[3])))
pipe_out, pipe_in = os.pipe()
fcntl.fcntl(pipe_in, 1031, 1 << 20)  # F_SETPIPE_SZ: a 1 MB pipe, so a splice moves up to 1 MB
while n := os.splice(client.fileno(), pipe_in, 1 << 20):
    while n:
        n -= os.splice(pipe_out, upstream.fileno(), n)
upstream.close()
'''
STREAM_GB = 1


async def round_trips(address: str, n: int, records: int, login: tuple[str, str] | None = None) -> list[float]:
    conn = await Connection.open(address, *(login or (None, None)), mechanism="SCRAM-SHA-512")
    body = produce_body("floor", 0, record_batch(records, 1000), acks=1)
    out = []
    for i in range(n + 100):
        started = time.perf_counter()
        await conn.send_raw(0, 9, body)
        if i >= 100:
            out.append(time.perf_counter() - started)
    conn.close()
    return sorted(out)


def measure(address: str, pid: int | None, n: int, records: int,
            login: tuple[str, str] | None) -> tuple[float, float, float]:
    """(p50, p99, the server's CPU seconds per request) over n sequential round trips."""
    cpu = sum(psutil.Process(pid).cpu_times()[:2]) if pid else 0.0
    times = asyncio.run(round_trips(address, n, records, login))
    used = (sum(psutil.Process(pid).cpu_times()[:2]) - cpu) if pid else 0.0
    return statistics.median(times), times[int(0.99 * len(times))], used / (n + 100)


def main() -> int:
    n, rounds = 2000, 3
    with tempfile.TemporaryDirectory() as tmp, KafkaBroker(Path(tmp) / "kafka", version=DEFAULT_VERSION,
                                                           extra_properties={"num.partitions": "1"}) as broker:
        bench = Bench(broker, DEFAULT_VERSION, Path(tmp), True)
        port = free_port()
        host, broker_port = broker.bootstrap.rsplit(":", 1)
        relay = subprocess.Popen([sys.executable, "-c", RELAY, str(port), host, broker_port])
        time.sleep(1)
        login = ("t0000-u0", BENCH_PASSWORD)
        tenants = tenants_config(1, quotas=NON_BINDING_QUOTAS, mechanism="SCRAM-SHA-512", auto_create=True)
        try:
            with bench.proxy() as proxy, bench.proxy(tenants=tenants) as tenant_proxy:
                asyncio.run(round_trips(broker.bootstrap, 200, 16))  # creates the topic
                asyncio.run(create_topic(tenant_proxy.bootstrap, login))
                paths = (("direct", broker.bootstrap, None, None), ("relay", f"127.0.0.1:{port}", relay.pid, None),
                         ("transparent", proxy.bootstrap, proxy.pid, None),
                         ("tenant mode", tenant_proxy.bootstrap, tenant_proxy.pid, login))
                for records in (1, 16, 64):  # 64 kB: the ceiling's Produce size
                    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name, *_ in paths}
                    for _ in range(rounds):  # interleaved, so a noisy minute does not land on one path only
                        for name, address, pid, credentials in paths:
                            runs[name].append(measure(address, pid, n, records, credentials))
                    rows = {name: tuple(statistics.median(r[i] for r in got) for i in range(3))
                            for name, got in runs.items()}
                    print(f"\n{records} kB per Produce (acks=1), {n} sequential round trips, median of {rounds} rounds")
                    for name, (p50, p99, cpu) in rows.items():
                        added = p50 - rows["direct"][0]
                        print(f"  {name:12} p50 {p50 * 1e6:6.0f} µs  p99 {p99 * 1e6:6.0f} µs  added p50 "
                              f"{added * 1e6:5.0f} µs  CPU per request {cpu * 1e6:4.0f} µs")
        finally:
            relay.kill()
            relay.wait()
    print(f"\n{STREAM_GB} GB streamed one way in 1 MB writes (no Kafka), relay CPU per GB moved")
    for name, source in (("uvloop relay, copying", RELAY), ("splice(2) relay, zero-copy", SPLICE_RELAY)):
        per_gb, rate = stream_cost(source)
        print(f"  {name:28} {per_gb:5.2f} CPU s/GB  {rate:5.0f} MB/s")
    return 0


def stream_cost(relay_source: str) -> tuple[float, float]:
    """(CPU s per GB, MB/s) of a relay moving STREAM_GB one way, in 1 MB writes, to a sink that discards."""
    sink = socket.create_server(("127.0.0.1", 0))
    relay_port = free_port()
    relay = subprocess.Popen([sys.executable, "-c", relay_source, str(relay_port), "127.0.0.1",
                              str(sink.getsockname()[1])])
    received = [0]

    def drain() -> None:
        conn, _ = sink.accept()
        buffer = bytearray(1 << 20)
        while n := conn.recv_into(buffer):
            received[0] += n
        conn.close()

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        for _ in range(100):  # the relay is listening once a connection is accepted
            try:
                client = socket.create_connection(("127.0.0.1", relay_port))
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        chunk = bytes(1 << 20)
        process = psutil.Process(relay.pid)
        cpu, started = sum(process.cpu_times()[:2]), time.monotonic()
        for _ in range(STREAM_GB * 1024):
            client.sendall(chunk)
        client.shutdown(socket.SHUT_WR)
        reader.join()
        elapsed, used = time.monotonic() - started, sum(process.cpu_times()[:2]) - cpu
        client.close()
    finally:
        relay.kill()
        relay.wait()
        sink.close()
    assert received[0] == STREAM_GB << 30, received[0]
    return used / STREAM_GB, STREAM_GB * 1024 / elapsed


async def create_topic(address: str, login: tuple[str, str]) -> None:
    """Metadata for the topic through a tenant proxy that allows auto-creation creates it."""
    conn = await Connection.open(address, *login, mechanism="SCRAM-SHA-512")
    for _ in range(50):
        answer = await conn.call(metadata_request("floor"), 12)
        if answer.topics and answer.topics[0].error_code == 0:
            break
        await asyncio.sleep(0.2)
    conn.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
