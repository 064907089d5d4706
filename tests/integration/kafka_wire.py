"""Kafka wire format by hand, for tests that must send what no client would.

It owns the byte-level builders (big-endian integers, strings, varints, request headers, size
prefixed frames, RecordBatch v2 with its CRC-32C) and a one-shot request/response exchange over
a raw socket. It never interprets a response beyond its size prefix.
"""

import socket
import struct

import helpers

TIMEOUT_S = 10
API_PRODUCE, API_FETCH, API_LIST_OFFSETS, API_METADATA, API_API_VERSIONS = 0, 1, 2, 3, 18


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC32C_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def uvarint(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def varint(n):
    return uvarint((n << 1) ^ (n >> 63))


def header(api_key, version, correlation_id, flexible=False):
    h = i16(api_key) + i16(version) + i32(correlation_id) + string("chronik-it")
    return h + (b"\x00" if flexible else b"")


def frame(payload):
    return i32(len(payload)) + payload


def records_section(values, ts_step_ms=0):
    """The records of a batch: uncompressed, null keys, no headers, offset deltas 0, 1, 2, ...
    and timestamp deltas i * ts_step_ms."""
    records = b""
    for i, v in enumerate(values):
        body = (b"\x00" + varint(i * ts_step_ms) + varint(i) + varint(-1) + varint(len(v)) + v +
                varint(0))
        records += varint(len(body)) + body
    return records


def batch_of(payload, count, codec=0, good_crc=True, ts_step_ms=0):
    """A RecordBatch v2 whose records field is payload (records, compressed as codec or not, or
    any bytes at all) and whose header says count records, with baseTimestamp TS_BASE_MS."""
    max_ts = helpers.TS_BASE_MS + max(count - 1, 0) * ts_step_ms
    after_crc = (i16(codec) + i32(count - 1) + i64(helpers.TS_BASE_MS) + i64(max_ts) +
                 i64(-1) + i16(-1) + i32(-1) + i32(count) + payload)
    crc = crc32c(after_crc) ^ (0 if good_crc else 0x5A5A5A5A)
    after_length = i32(0) + b"\x02" + struct.pack(">I", crc) + after_crc
    return i64(0) + i32(len(after_length)) + after_length


def record_batch(values, good_crc=True, ts_step_ms=0):
    """A RecordBatch v2 of uncompressed records with null keys and no headers; record i has
    timestamp TS_BASE_MS + i * ts_step_ms."""
    return batch_of(records_section(values, ts_step_ms), len(values), 0, good_crc, ts_step_ms)


def produce_v3(correlation_id, topic, batch, timeout_ms=TIMEOUT_S * 1000, partition=0):
    body = (string(None) + i16(-1) + i32(timeout_ms) + i32(1) + string(topic) + i32(1) +
            i32(partition) + i32(len(batch)) + batch)
    return frame(header(API_PRODUCE, 3, correlation_id) + body)


def produce_v3_answer(payload, correlation_id):
    """(error_code, base_offset) from a Produce v3 response for one topic and partition."""
    assert struct.unpack(">ii", payload[:8]) == (correlation_id, 1)
    off = 10 + struct.unpack(">h", payload[8:10])[0]
    count, _, error_code, base_offset = struct.unpack(">iihq", payload[off:off + 18])
    assert count == 1
    return error_code, base_offset


def fetch_v4_batches(payload, correlation_id):
    """(error_code, [raw batch bytes]) from a Fetch v4 response for one topic and partition."""
    assert struct.unpack(">i", payload[:4])[0] == correlation_id
    off = 8  # correlation id, throttle time
    assert struct.unpack(">i", payload[off:off + 4])[0] == 1
    off += 4
    off += 2 + struct.unpack(">h", payload[off:off + 2])[0]
    assert struct.unpack(">i", payload[off:off + 4])[0] == 1
    off += 4
    _, error_code, _, _, aborted = struct.unpack(">ihqqi", payload[off:off + 26])
    off += 26 + 16 * max(aborted, 0)
    size = struct.unpack(">i", payload[off:off + 4])[0]
    records = payload[off + 4:off + 4 + max(size, 0)]
    batches = []
    while len(records) >= 12:
        total = 12 + struct.unpack(">i", records[8:12])[0]
        if total > len(records):
            break  # a partial batch at the end of the fetch
        batches.append(records[:total])
        records = records[total:]
    return error_code, batches


def fetch_v4(correlation_id, topic, partition, offset, max_wait_ms):
    body = (i32(-1) + i32(max_wait_ms) + i32(1) + i32(1 << 20) + b"\x00" + i32(1) + string(topic) +
            i32(1) + i32(partition) + i64(offset) + i32(1 << 20))
    return frame(header(API_FETCH, 4, correlation_id) + body)


def metadata_v4(correlation_id, topics):
    """Metadata v4 for the named topics; never auto-creates."""
    body = i32(len(topics)) + b"".join(string(t) for t in topics) + b"\x00"
    return frame(header(API_METADATA, 4, correlation_id) + body)


def metadata_v4_leaders(payload, correlation_id):
    """{(topic, partition): (error_code, leader)} from a Metadata v4 response."""
    assert struct.unpack(">i", payload[:4])[0] == correlation_id
    off = 8  # correlation id, throttle time

    def take(fmt):
        nonlocal off
        v = struct.unpack_from(fmt, payload, off)[0]
        off += struct.calcsize(fmt)
        return v

    def skip_string():
        nonlocal off
        n = take(">h")
        off += max(n, 0)

    for _ in range(take(">i")):  # brokers: id, host, port, rack
        take(">i")
        skip_string()
        take(">i")
        skip_string()
    skip_string()  # cluster id
    take(">i")  # controller id
    leaders = {}
    for _ in range(take(">i")):
        take(">h")
        n = take(">h")
        name = payload[off:off + n].decode()
        off += n
        take(">b")  # internal
        for _ in range(take(">i")):
            err = take(">h")
            partition = take(">i")
            leaders[(name, partition)] = (err, take(">i"))
            for _ in range(2):  # replicas, isr
                n = take(">i")
                off += 4 * n
    return leaders


def list_offsets_v1(correlation_id, topic, partition, timestamp_ms):
    body = i32(-1) + i32(1) + string(topic) + i32(1) + i32(partition) + i64(timestamp_ms)
    return frame(header(API_LIST_OFFSETS, 1, correlation_id) + body)


def list_offsets_v1_answer(payload, correlation_id):
    """(error_code, timestamp, offset) from a ListOffsets v1 response for one partition."""
    assert struct.unpack(">ii", payload[:8]) == (correlation_id, 1)
    name_len = struct.unpack(">h", payload[8:10])[0]
    off = 10 + name_len
    count, _, error_code, timestamp, offset = struct.unpack(">iihqq", payload[off:off + 26])
    assert count == 1
    return error_code, timestamp, offset


def send(port, data, shut_write=False):
    """Opens a connection and sends data; the caller reads with receive() and closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    try:
        s.sendall(data)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
    except (ConnectionResetError, BrokenPipeError):
        pass
    return s


def receive(s):
    """One response: ("closed", None) or ("response", payload without the size prefix)."""
    try:
        size = _recv_exact(s, 4)
        if size is None:
            return ("closed", None)
        payload = _recv_exact(s, struct.unpack(">i", size)[0])
        return ("closed", None) if payload is None else ("response", payload)
    except (ConnectionResetError, BrokenPipeError):
        return ("closed", None)


def exchange(port, data, shut_write=False):
    """Sends data on a new connection and returns receive()'s answer."""
    s = send(port, data, shut_write)
    try:
        return receive(s)
    finally:
        s.close()


def _recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            return None
        out += chunk
    return out
