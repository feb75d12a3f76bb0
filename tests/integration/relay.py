"""A TCP relay in front of the real broker: it can cut every connection, and record every frame.

It sits between the proxy and the broker, so it sees the requests exactly as clients encoded them
(the proxy only renumbers correlation ids) and the responses exactly as the broker encoded them.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from dataclasses import dataclass

from tenantry.protocol import FrameReader


@dataclass(frozen=True)
class Captured:
    kind: str  # "request" or "response"
    api_key: int
    api_version: int
    frame: bytes  # without the size prefix


class Relay:
    def __init__(self, target_port: int, capture: bool = False) -> None:
        self.target_port = target_port
        self.capture = capture
        self.frames: list[Captured] = []
        self.loop = asyncio.new_event_loop()
        self.writers: list[asyncio.StreamWriter] = []
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("relay did not start")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]
        in_flight: dict[int, tuple[int, int]] = {}  # correlation id -> (api key, version)

        def on_request(frame: memoryview) -> None:
            api_key, version, corr = struct.unpack_from(">hhi", frame)
            in_flight[corr] = (api_key, version)
            self.frames.append(Captured("request", api_key, version, bytes(frame)))

        def on_response(frame: memoryview) -> None:
            api_key, version = in_flight.pop(struct.unpack_from(">i", frame)[0])
            self.frames.append(Captured("response", api_key, version, bytes(frame)))

        await asyncio.gather(self._pipe(reader, up_writer, on_request), self._pipe(up_reader, writer, on_response))

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, on_frame) -> None:  # type: ignore[no-untyped-def]
        frames = FrameReader()
        try:
            while data := await src.read(65536):
                if self.capture:
                    for frame in frames.feed(data):
                        on_frame(frame)
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()

    def cut(self) -> None:
        """Abort every relayed connection, as a crashing broker would."""
        def cut_all() -> None:
            for writer in self.writers:
                writer.transport.abort()
            self.writers.clear()
        self.loop.call_soon_threadsafe(cut_all)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
