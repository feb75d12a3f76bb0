"""make fuzz: mutated frames of every API offered to tenants, before and after login, against a real broker.

    python -m tests.fuzz [--frames 200000] [--seed 1] [--concurrency 8]

Every API a tenant may use is sampled at its lowest and highest version (the golden tests' samples),
encoded, and mutated: bits flipped, bytes set to edge values, lengths and counts overwritten, frames cut
short or extended, API keys and versions swapped. Half of the connections log in first; the others send
their frames before any login. A connection sends a frame once the previous one was answered, and is
replaced by a new one when the proxy closes it, so every frame is read by the proxy. At the end the
proxy must still be up, its log must hold no traceback and no unretrieved task exception, and once
every client has gone its open descriptors and `tenantry_connections_active` must be back to where
they started. RSS is reported. A small fixed sample runs in `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from scramp import ScramClient

from tenantry.protocol import encode
from tenantry.protocol.codec import decode
from tenantry.protocol.headers import encode_request_header
from tenantry.protocol.messages import REQUESTS
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_authenticate_response import SaslAuthenticateResponse
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from tests.golden import samples
from tests.golden.harness import tenant_apis

SIZE = struct.Struct(">i")
EDGES = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)


def seeds() -> list[bytes]:
    """One valid request (without size prefix) per API offered to tenants, at its lowest and highest version."""
    out = []
    for key, (lo, hi) in sorted(tenant_apis().items()):
        for version in sorted({lo, hi}):
            message = samples.request_sample(key, REQUESTS[key], version, "acme", listing=False)
            out.append(encode_request_header(key, version, 1, "fuzz") + encode(message, version))
    return out


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """`frame` with one to three random mutations."""
    data = bytearray(frame)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(7)
        if not data:
            data = bytearray(rng.randbytes(rng.randint(1, 16)))
        at = rng.randrange(len(data))
        if kind == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[at] = rng.choice(EDGES)
        elif kind == 2 and len(data) >= at + 4:  # a length, count or size field overwritten
            data[at:at + 4] = SIZE.pack(rng.choice((-1, 0, 1, 0x7FFFFFFF, -0x80000000, rng.randrange(1 << 16))))
        elif kind == 3:
            del data[rng.randrange(len(data)):]
        elif kind == 4:
            data += rng.randbytes(rng.randint(1, 64))
        elif kind == 5 and len(data) >= 4:  # another API or version
            data[0:4] = struct.pack(">hh", rng.randrange(-2, 100), rng.randrange(-2, 20))
        else:
            data[at:at + 1] = rng.randbytes(rng.randint(0, 3))
    return bytes(data)


@dataclass
class Tally:
    frames: int = 0
    connections: int = 0
    logged_in: int = 0
    closed_by_proxy: int = 0
    answered: int = 0  # mutated frames the proxy answered (the rest closed their connection, or wait)
    errors: list[str] = field(default_factory=list)


async def _call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> memoryview:
    writer.write(SIZE.pack(len(body)) + body)
    size = SIZE.unpack(await reader.readexactly(4))[0]
    return memoryview(await reader.readexactly(size))


async def _login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, user: str, password: str) -> None:
    mechanism = "SCRAM-SHA-256"
    await _call(reader, writer, encode_request_header(17, 1, 1, "fuzz") + encode(
        SaslHandshakeRequest(mechanism=mechanism), 1))
    client = ScramClient([mechanism], user, password)
    for corr, token in ((2, lambda: client.get_client_first()), (3, lambda: client.get_client_final())):
        answer = await _call(reader, writer, encode_request_header(36, 2, corr, "fuzz") + encode(
            SaslAuthenticateRequest(auth_bytes=token().encode()), 2))
        response = decode(SaslAuthenticateResponse, answer[5:], 2)  # correlation id, tagged fields
        if response.error_code:
            raise RuntimeError(f"fuzz login refused: {response.error_message}")
        if corr == 2:
            client.set_server_first(bytes(response.auth_bytes).decode())


async def _session(address: str, frames: Iterator[bytes], login: tuple[str, str] | None, tally: Tally) -> bool:
    """One connection: send frames one by one, each after the previous was answered; False once none are left.

    A frame the proxy neither answers nor closes on within half a second (a Fetch told to wait, a request
    the broker holds) ends the connection too: the next frame goes on a new one, so every frame counted
    was read by the proxy.
    """
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    tally.connections += 1
    try:
        if login is not None:
            await _login(reader, writer, *login)
            tally.logged_in += 1
        for frame in frames:
            writer.write(SIZE.pack(len(frame)) + frame)
            tally.frames += 1
            try:
                async with asyncio.timeout(0.5):
                    size = SIZE.unpack(await reader.readexactly(4))[0]
                    await reader.readexactly(size)
                tally.answered += 1
            except TimeoutError:
                return True
            except (ConnectionError, asyncio.IncompleteReadError):
                tally.closed_by_proxy += 1
                return True
        return False
    finally:
        writer.close()


async def fuzz(address: str, total: int, seed: int, login: tuple[str, str], concurrency: int = 8) -> Tally:
    """Send `total` mutated frames over as many connections as it takes, half of them logged in."""
    rng, base, tally = random.Random(seed), seeds(), Tally()
    frames = (mutate(rng, rng.choice(base)) for _ in range(total))

    async def worker(n: int) -> None:
        more = True
        while more:
            n += 1
            try:
                more = await _session(address, frames, login if n % 2 else None, tally)
            except (ConnectionError, asyncio.IncompleteReadError, RuntimeError) as exc:
                tally.errors.append(repr(exc))  # the client's own failure (a refused login): counted
                more = True
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    from tests.fuzz_run import run_against_real_broker

    return run_against_real_broker(args.frames, args.seed, args.concurrency)


if __name__ == "__main__":
    sys.exit(main())
