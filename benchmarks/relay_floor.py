"""The floor for any Python proxy on this machine: a bare uvloop TCP relay that parses nothing.

    python -m benchmarks.relay_floor

Runs sequential Produce round trips (one request in flight) straight to the broker, through this
relay, and through Tenantry, and prints the median and p99 added per round trip, and the relay's
and the proxy's CPU per request. What Tenantry adds beyond the relay is the cost of understanding
Kafka; what the relay adds is the cost of Python, the event loop and two more socket hops.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks.harness import Bench
from benchmarks.rawkafka import Connection, produce_body, record_batch
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


async def round_trips(address: str, n: int, records: int) -> list[float]:
    conn = await Connection.open(address)
    body = produce_body("floor", 0, record_batch(records, 1000), acks=1)
    out = []
    for i in range(n + 100):
        started = time.perf_counter()
        await conn.send_raw(0, 9, body)
        if i >= 100:
            out.append(time.perf_counter() - started)
    conn.close()
    return sorted(out)


def main() -> int:
    n = 2000
    with tempfile.TemporaryDirectory() as tmp, KafkaBroker(Path(tmp) / "kafka", version=DEFAULT_VERSION,
                                                           extra_properties={"num.partitions": "1"}) as broker:
        bench = Bench(broker, DEFAULT_VERSION, Path(tmp), True)
        port = free_port()
        host, broker_port = broker.bootstrap.rsplit(":", 1)
        relay = subprocess.Popen([sys.executable, "-c", RELAY, str(port), host, broker_port])
        time.sleep(1)
        try:
            with bench.proxy() as proxy:
                asyncio.run(round_trips(broker.bootstrap, 200, 16))  # creates the topic
                for records in (1, 16):
                    rows = {}
                    for name, address, pid in (("direct", broker.bootstrap, None), ("relay", f"127.0.0.1:{port}",
                                               relay.pid), ("tenantry", proxy.bootstrap, proxy.pid)):
                        cpu = sum(psutil.Process(pid).cpu_times()[:2]) if pid else 0.0
                        times = asyncio.run(round_trips(address, n, records))
                        used = (sum(psutil.Process(pid).cpu_times()[:2]) - cpu) if pid else 0.0
                        rows[name] = (statistics.median(times), times[int(0.99 * len(times))], used / (n + 100))
                    print(f"\n{records} kB per Produce (acks=1), {n} sequential round trips")
                    for name, (p50, p99, cpu) in rows.items():
                        added = p50 - rows["direct"][0]
                        print(f"  {name:9} p50 {p50 * 1e6:6.0f} µs  p99 {p99 * 1e6:6.0f} µs  added p50 "
                              f"{added * 1e6:5.0f} µs  CPU per request {cpu * 1e6:4.0f} µs")
        finally:
            relay.kill()
            relay.wait()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
