"""A minimal blocking Kafka client over a raw socket, for sending exactly the bytes a test wants."""

from __future__ import annotations

import socket
import struct

from tenantry.localkafka.broker import recv_exact
from tenantry.protocol import decode
from tenantry.protocol.envelope import request_frame
from tenantry.protocol.headers import response_body_offset, response_header_version
from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.messages.api_versions_request import ApiVersionsRequest
from tenantry.protocol.schema import Message


def connect(address: str, timeout: float = 10.0) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def recv_frame(sock: socket.socket) -> bytes:
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    return recv_exact(sock, size)


def call(sock: socket.socket, request: Message, version: int, corr: int = 1) -> Message:
    assert request.API_KEY is not None
    sock.sendall(request_frame(request, version, corr, "raw-test"))
    frame = recv_frame(sock)
    assert struct.unpack(">i", frame[:4])[0] == corr
    offset = response_body_offset(memoryview(frame), response_header_version(request.API_KEY, version))
    return decode(RESPONSES[request.API_KEY], frame[offset:], version)


def closed_by_peer(sock: socket.socket, timeout: float = 10.0) -> bool:
    """True when the peer closes the connection (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def serves(address: str) -> bool:
    """The proxy answers a fresh connection's ApiVersions."""
    with connect(address) as sock:
        response = call(sock, ApiVersionsRequest(client_software_name="probe", client_software_version="1"), 3)
        return response.error_code == 0 and len(response.api_keys) > 10


def plain_login(address: str, user: str, password: str, timeout: float = 20.0) -> socket.socket | None:
    """Log in with SASL/PLAIN; the open socket, or None if the proxy closed the connection instead."""
    from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
    from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest

    sock = connect(address, timeout)
    try:
        handshake = call(sock, SaslHandshakeRequest(mechanism="PLAIN"), 1)
        assert handshake.error_code == 0, handshake
        answer = call(sock, SaslAuthenticateRequest(auth_bytes=f"\0{user}\0{password}".encode()), 2, corr=2)
        assert answer.error_code == 0, answer
        return sock
    except (ConnectionError, EOFError, OSError):
        sock.close()
        return None
