"""Restart time of a node with many partitions: exec to listening, to the first Metadata
answer, and to every partition answering ListOffsets.

It owns one broker process at a time on a data directory it creates: it creates TOPICS topics
holding PARTITIONS partitions in all, writes one record batch to every partition, stops the
broker (SIGTERM, a clean shutdown, timed from the signal to the exit, or SIGKILL, a crash),
starts it again and times the restart from exec. Standard library only; speaks the Kafka wire format itself (CreateTopics v0,
Metadata v1, Produce v3, ListOffsets v1) with the integration tests' builders. Run through bench/restart/run.sh.
"""

import os
import signal
import socket
import struct
import subprocess
import sys
import time

TIMEOUT_S = 1800.0
TOPIC_PARTITIONS_MAX = 1000  # partitions per topic
SEGMENT_BYTES = 256 * 1024

# The byte-level builders the integration tests use (tests/integration/kafka_wire.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "integration"))
from kafka_wire import i16, i32, i64, record_batch, string  # noqa: E402


def request(api_key, version, correlation_id, body):
    payload = i16(api_key) + i16(version) + i32(correlation_id) + string("restart-bench") + body
    return i32(len(payload)) + payload


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        self.next_id = 1

    def call(self, api_key, version, body):
        cid = self.next_id
        self.next_id += 1
        self.s.sendall(request(api_key, version, cid, body))
        size = struct.unpack(">i", self._exact(4))[0]
        payload = self._exact(size)
        assert struct.unpack(">i", payload[:4])[0] == cid
        return payload[4:]

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            out += chunk
        return out

    def close(self):
        self.s.close()


def topic_layout(partitions):
    """[(name, count)] with at most TOPIC_PARTITIONS_MAX partitions each."""
    out = []
    left, i = partitions, 0
    while left > 0:
        n = min(left, TOPIC_PARTITIONS_MAX)
        out.append(("restart-%03d" % i, n))
        left -= n
        i += 1
    return out


def create_topics(conn, layout):
    for name, count in layout:
        body = i32(1) + string(name) + i32(count) + i16(1) + i32(0) + i32(0) + i32(int(TIMEOUT_S * 1000))
        resp = conn.call(19, 0, body)
        assert struct.unpack(">i", resp[:4])[0] == 1
        nlen = struct.unpack(">h", resp[4:6])[0]
        err = struct.unpack(">h", resp[6 + nlen:8 + nlen])[0]
        if err != 0:
            raise RuntimeError("CreateTopics %s: error %d" % (name, err))


def produce_all(conn, layout, value):
    """One batch to every partition, acks=all; returns the partitions that did not answer
    NONE."""
    failed = 0
    batch = record_batch([value])
    for name, count in layout:
        parts = b"".join(i32(p) + i32(len(batch)) + batch for p in range(count))
        body = string(None) + i16(-1) + i32(int(TIMEOUT_S * 1000)) + i32(1) + string(name) + \
            i32(count) + parts
        resp = conn.call(0, 3, body)
        off = 4
        nlen = struct.unpack(">h", resp[off:off + 2])[0]
        off += 2 + nlen
        n = struct.unpack(">i", resp[off:off + 4])[0]
        off += 4
        for _ in range(n):
            _, err = struct.unpack(">ih", resp[off:off + 6])
            off += 6 + 8 + 8  # base offset, log append time
            failed += err != 0
    return failed


def list_offsets_all(conn, layout):
    """ListOffsets v1 (latest) for every partition; returns how many did not answer NONE."""
    failed = 0
    for name, count in layout:
        parts = b"".join(i32(p) + i64(-1) for p in range(count))
        resp = conn.call(2, 1, i32(-1) + i32(1) + string(name) + i32(count) + parts)
        off = 4
        off += 2 + struct.unpack(">h", resp[off:off + 2])[0]
        n = struct.unpack(">i", resp[off:off + 4])[0]
        off += 4
        for _ in range(n):
            _, err = struct.unpack(">ih", resp[off:off + 6])
            off += 6 + 8 + 8  # timestamp, offset
            failed += err != 0
    return failed


def start(chronik, data_dir, port):
    # Small segments: the active segment of every partition is preallocated up to
    # log.segment.bytes (16 MiB chunks by default), which for 10,000 partitions is 160 GB.
    args = [chronik, "--data-dir", data_dir, "--port", str(port),
            "--set", "log.segment.bytes=%d" % SEGMENT_BYTES]
    out = open(os.path.join(os.path.dirname(data_dir), "broker.log"), "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    out.close()
    return proc, t0


def wait_listening(proc, port, t0):
    while time.monotonic() - t0 < TIMEOUT_S:
        if proc.poll() is not None:
            raise RuntimeError("chronik exited with %d" % proc.returncode)
        try:
            return Conn(port), time.monotonic() - t0
        except OSError:
            time.sleep(0.001)
    raise RuntimeError("chronik did not listen within %.0f s" % TIMEOUT_S)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    chronik, root, partitions, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    data_dir = os.path.join(root, "data")
    port = free_port()
    layout = topic_layout(partitions)

    proc, t0 = start(chronik, data_dir, port)
    try:
        conn, _ = wait_listening(proc, port, t0)
        create_topics(conn, layout)
        # Partitions created at run time open a few at a time (a loop step each): wait for
        # every one, then write.
        while list_offsets_all(conn, layout):
            if time.monotonic() - t0 > TIMEOUT_S:
                raise RuntimeError("not every partition opened within %.0f s" % TIMEOUT_S)
            time.sleep(0.1)
        failed = produce_all(conn, layout, b"before restart")
        conn.close()
        if failed:
            raise RuntimeError("%d partitions refused the first produce" % failed)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    stop_s = None
    if mode == "clean":
        t_stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        if proc.wait(timeout=TIMEOUT_S) != 0:
            raise RuntimeError("chronik exited with %d on SIGTERM" % proc.returncode)
        stop_s = time.monotonic() - t_stop
    else:
        proc.kill()
        proc.wait()

    proc, t0 = start(chronik, data_dir, port)
    try:
        conn, listening_s = wait_listening(proc, port, t0)
        conn.call(3, 1, i32(-1))  # Metadata v1, every topic
        metadata_s = time.monotonic() - t0
        # Every partition: ListOffsets until it answers NONE (a partition still opening
        # answers a retriable error). Produce would measure fsync throughput instead.
        while list_offsets_all(conn, layout):
            if time.monotonic() - t0 > TIMEOUT_S:
                raise RuntimeError("not every partition answered within %.0f s" % TIMEOUT_S)
        all_s = time.monotonic() - t0
        conn.close()
    finally:
        # Killed: the clean stop measured is the one before the restart.
        proc.kill()
        proc.wait()
    print("%-5s partitions=%d exec-to-listening %.3f s  exec-to-metadata %.3f s  "
          "exec-to-all-partitions-served %.3f s%s" % (
              mode, partitions, listening_s, metadata_s, all_s,
              "" if stop_s is None else "  (SIGTERM-to-exit before it %.3f s)" % stop_s))


if __name__ == "__main__":
    main()
