#!/usr/bin/env python3
"""Health probe for the local Kafka broker: does it answer a Metadata request?

Usage: kafka_probe.py BOOTSTRAP [TIMEOUT_SECONDS]

Exit 0 and print one line about the cluster when a broker answers with a broker list and a
controller; exit 1 with the reason otherwise. Uses confluent_kafka's AdminClient when it is
importable, else speaks the Kafka wire protocol directly (ApiVersions v0, then a
non-flexible Metadata version) so that it also works before the package is installed.

For the secure stack, KAFKA_PROBE_CA (the CA file), KAFKA_PROBE_USER and KAFKA_PROBE_PASSWORD
make it connect with SASL_SSL/SCRAM-SHA-512; without confluent_kafka it then checks the TLS
handshake and ApiVersions only (SCRAM is not spoken here).
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import sys

METADATA = 3
API_VERSIONS = 18


def probe_confluent(bootstrap: str, timeout: float) -> str:
    from confluent_kafka.admin import AdminClient  # type: ignore[import-not-found]

    # log_level 0 keeps librdkafka quiet while the broker is still starting.
    config = {"bootstrap.servers": bootstrap, "log_level": 0}
    if ca := os.environ.get("KAFKA_PROBE_CA"):
        config |= {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": os.environ.get("KAFKA_PROBE_USER", ""),
            "sasl.password": os.environ.get("KAFKA_PROBE_PASSWORD", ""),
            "ssl.ca.location": ca,
        }
    admin = AdminClient(config)
    md = admin.list_topics(timeout=timeout)
    if not md.brokers or md.controller_id < 0:
        raise RuntimeError(f"metadata without brokers/controller: {md.brokers!r}")
    return (
        f"cluster {md.cluster_id}, brokers {sorted(md.brokers)}, "
        f"controller {md.controller_id}, {len(md.topics)} topics (confluent_kafka)"
    )


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s


def call(sock: socket.socket, api: int, version: int, corr: int, body: bytes) -> Reader:
    client_id = b"agentlog-probe"
    header = struct.pack(">hhih", api, version, corr, len(client_id)) + client_id
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    r = Reader(recv_exact(sock, size))
    if r.take(">i") != corr:
        raise RuntimeError("correlation id mismatch")
    return r


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return buf


def probe_raw(bootstrap: str, timeout: float) -> str:
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    ca = os.environ.get("KAFKA_PROBE_CA")
    with socket.create_connection((host, int(port)), timeout=timeout) as plain:
        sock = ssl.create_default_context(cafile=ca).wrap_socket(plain, server_hostname=host) if ca else plain
        sock.settimeout(timeout)
        r = call(sock, API_VERSIONS, 0, 1, b"")
        if (err := r.take(">h")) != 0:
            raise RuntimeError(f"ApiVersions error {err}")
        ranges = {}
        for _ in range(r.take(">i")):
            key, lo, hi = r.take(">h"), r.take(">h"), r.take(">h")
            ranges[key] = (lo, hi)
        if ca:  # Metadata needs SASL first, which this probe does not speak
            return f"TLS handshake and ApiVersions ok ({len(ranges)} APIs; raw probe)"
        if METADATA not in ranges:
            raise RuntimeError("listener does not offer the Metadata API (controller port?)")
        lo, hi = ranges[METADATA]
        version = min(hi, 8)  # v9+ is the flexible encoding; v4..v8 share the prefix we read
        if version < max(lo, 4):
            raise RuntimeError(f"no Metadata version between 4 and 8 (broker: {lo}..{hi})")
        body = struct.pack(">ib", -1, 0)  # all topics, no auto-creation
        if version >= 8:
            body += struct.pack(">bb", 0, 0)  # no authorized-operations
        r = call(sock, METADATA, version, 2, body)
        r.take(">i")  # throttle_time_ms
        brokers = []
        for _ in range(r.take(">i")):
            node = r.take(">i")
            r.string()  # host
            r.take(">i")  # port
            r.string()  # rack
            brokers.append(node)
        cluster_id = r.string()
        controller = r.take(">i")
        if not brokers or controller < 0:
            raise RuntimeError(f"metadata without brokers/controller: {brokers!r}")
        return f"cluster {cluster_id}, brokers {sorted(brokers)}, controller {controller} (raw Metadata v{version})"


def main() -> int:
    bootstrap = sys.argv[1]
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    try:
        import confluent_kafka  # type: ignore[import-not-found]  # noqa: F401

        probe = probe_confluent
    except ImportError:
        probe = probe_raw
    try:
        print(probe(bootstrap, timeout))
    except Exception as exc:  # any failure means "not healthy (yet)"
        print(f"kafka at {bootstrap} not answering: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
