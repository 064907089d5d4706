"""Test data and checks the client test modules share.

It owns the seeded message sets every client produces and the comparison of what a consumer
read with what was produced. It never talks to a broker itself. The seed comes from
CHRONIK_IT_SEED when set (to replay a failure); conftest.py prints it at the end of every run.
"""

import os
import random
import time

SEED = int(os.environ.get("CHRONIK_IT_SEED", str(int(time.time() * 1000) % 1000000007)))

CODECS = ["gzip", "snappy", "lz4", "zstd"]

# A start time for produced records, far enough back that it precedes any broker clock and
# whole seconds apart per record, so timestamp look-ups have one right answer.
TS_BASE_MS = 1_700_000_000_000


def rng(salt):
    """A generator seeded by the run's seed and a per-test salt, so tests are independent."""
    return random.Random("%d/%s" % (SEED, salt))


def sample_messages(salt, count=40, null_header_values=True):
    """Records covering keys, no key, null values, empty values, binary bytes and headers
    (including repeated keys and null header values, or empty ones where a client's producer
    cannot send nulls). Timestamps rise by one second each."""
    r = rng(salt)
    msgs = []
    for i in range(count):
        kind = i % 6
        key = None if kind == 1 else ("key-%d-%d" % (i, r.randrange(1000))).encode()
        if kind == 2:
            value = None
        elif kind == 3:
            value = b""
        else:
            value = bytes(r.randrange(256) for _ in range(r.randrange(1, 300)))
        headers = []
        if kind in (0, 4):
            headers = [("h-a", b"one"), ("h-b", bytes([i % 256, 0, 255])), ("h-a", b"two")]
        elif kind == 5:
            headers = [("h-null", None if null_header_values else b"")]
        msgs.append({"key": key, "value": value, "headers": headers, "ts": TS_BASE_MS + i * 1000})
    return msgs


def text_messages(salt, count=20):
    """Printable records without nulls or headers, for tools that speak lines (kcat)."""
    r = rng(salt)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_."
    msgs = []
    for i in range(count):
        tail = "".join(r.choice(alphabet) for _ in range(r.randrange(1, 60)))
        msgs.append({"key": b"k%d" % i, "value": ("v%d-%s" % (i, tail)).encode(), "headers": [],
                     "ts": None})
    return msgs


def uvarint_len(n):
    length = 1
    while n >= 0x80:
        n >>= 7
        length += 1
    return length


def varint_len(n):
    return uvarint_len((n << 1) ^ (n >> 63))


def batch_bytes(key, value, headers=()):
    """The size of an uncompressed RecordBatch v2 holding one record with offset and timestamp
    deltas 0: the 61-byte batch header plus the record and its length prefix."""
    body = 1 + 1 + 1  # attributes, timestampDelta 0, offsetDelta 0
    body += varint_len(-1 if key is None else len(key)) + (len(key) if key else 0)
    body += varint_len(-1 if value is None else len(value)) + (len(value) if value else 0)
    body += varint_len(len(headers))
    for hk, hv in headers:
        body += varint_len(len(hk)) + len(hk)
        body += varint_len(-1 if hv is None else len(hv)) + (len(hv) if hv else 0)
    return 61 + varint_len(body) + body


def value_bytes_for_batch(batch_bytes_total, key):
    """The value length that makes a one-record batch exactly batch_bytes_total bytes."""
    n = batch_bytes_total - 61 - 40
    while batch_bytes(key, b"x" * n) < batch_bytes_total:
        n += 1
    assert batch_bytes(key, b"x" * n) == batch_bytes_total
    return n


def assert_same_records(got, want, check_ts=True):
    """got and want are lists of dicts with key, value, headers and ts; order matters."""
    assert len(got) == len(want), "read %d records, produced %d" % (len(got), len(want))
    for i, (g, w) in enumerate(zip(got, want)):
        assert g["key"] == w["key"], "record %d: key %r, produced %r" % (i, g["key"], w["key"])
        assert g["value"] == w["value"], "record %d: value differs (%r..., produced %r...)" % (
            i, (g["value"] or b"")[:20], (w["value"] or b"")[:20])
        assert list(g["headers"]) == list(w["headers"]), "record %d: headers %r, produced %r" % (
            i, g["headers"], w["headers"])
        if check_ts and w["ts"] is not None:
            assert g["ts"] == w["ts"], "record %d: timestamp %d, produced %d" % (
                i, g["ts"], w["ts"])


def wait_until(fn, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout_s, what))
        time.sleep(0.05)
