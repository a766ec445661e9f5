"""Raw HTTP/2 on a plain socket, for the interop tests that look at what the
server's gRPC transport says and enforces below any gRPC client
(server_lifecycle_test.py, limits_under_load_test.py): the client preface,
frames built and split, and a HEADERS frame for a gRPC call in HPACK
literals (no compression state). Every read is bounded by a timeout.
"""

import socket
import time

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
REFUSED_STREAM = 0x7


def frame(kind, flags=0, stream=0, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags])
            + stream.to_bytes(4, "big") + payload)


EMPTY_SETTINGS = frame(SETTINGS)


def http2_connection(host, port):
    """A raw connection that has said the HTTP/2 preface and empty SETTINGS."""
    connection = socket.create_connection((host, port), timeout=5)
    connection.sendall(HTTP2_PREFACE + EMPTY_SETTINGS)
    return connection


def frames(data):
    """[(type, flags, stream, payload)] of the whole frames in `data`."""
    out, offset = [], 0
    while offset + 9 <= len(data):
        length = int.from_bytes(data[offset:offset + 3], "big")
        if offset + 9 + length > len(data):
            break
        out.append((data[offset + 3], data[offset + 4],
                    int.from_bytes(data[offset + 5:offset + 9], "big") & 0x7FFFFFFF,
                    data[offset + 9:offset + 9 + length]))
        offset += 9 + length
    return out


def frame_types(data):
    """The type of every frame whose 9-byte header is in `data`."""
    types, offset = [], 0
    while offset + 9 <= len(data):
        types.append(data[offset + 3])
        offset += 9 + int.from_bytes(data[offset:offset + 3], "big")
    return types


def settings(payload):
    """SETTINGS payload -> {identifier: value}."""
    return {int.from_bytes(payload[i:i + 2], "big"): int.from_bytes(payload[i + 2:i + 6], "big")
            for i in range(0, len(payload) - 5, 6)}


def read_until(connection, done, seconds):
    """Bytes received until done(bytes) holds, the peer closes or `seconds`
    pass."""
    received = b""
    deadline = time.monotonic() + seconds
    while not done(received) and time.monotonic() < deadline:
        connection.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = connection.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        received += chunk
    return received


def _literal(name, value):
    """An HPACK literal header field without indexing, new name (RFC 7541
    6.2.2), lengths below 127."""
    name, value = name.encode(), value.encode()
    return bytes([0x00, len(name)]) + name + bytes([len(value)]) + value


def grpc_headers(stream, path, authority):
    """A HEADERS frame (END_HEADERS, stream left open) that starts a gRPC
    call of `path` on `stream`."""
    block = b"".join(_literal(n, v) for n, v in (
        (":method", "POST"), (":scheme", "http"), (":path", path),
        (":authority", authority), ("content-type", "application/grpc"),
        ("te", "trailers")))
    return frame(HEADERS, END_HEADERS, stream, block)
