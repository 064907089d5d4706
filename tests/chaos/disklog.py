"""Reads a stopped node's copy of a partition straight from its segment files, so the chaos run
can compare every replica with what the leader served (Kafka clients fetch from leaders only).

It owns nothing but the parsing. A partition's directory (<data dir>/<topic>-<partition>, see
src/log/log.h) holds NNNNNNNNNNNNNNNNNNNN.log segments of record batches (magic 2) exactly as
Kafka lays them out. Only uncompressed batches are understood (run.py's producers send
compression.type=none); control batches (a Raft leader's no-op, aborted-transaction markers)
hold no data and are skipped. A segment's end is its last whole batch: a crashed node's active
segment may end in preallocated zeros or a torn batch, which the broker itself drops on
recovery.
"""

import os
import struct

BATCH_HEADER = struct.Struct(">qiiBIhiqqqhii")  # 61 bytes, baseOffset .. records count
BATCH_LENGTH_OFFSET_BYTES = 12  # baseOffset and batchLength precede what batchLength counts
ATTR_COMPRESSION_MASK = 0x07
ATTR_CONTROL = 0x20


class DiskLogError(Exception):
    pass


def _varint(buf, pos):
    shift = 0
    raw = 0
    while True:
        if pos >= len(buf):
            raise DiskLogError("varint past the end of a record")
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        if not b & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7


def _bytes(buf, pos):
    n, pos = _varint(buf, pos)
    if n < 0:
        return None, pos
    return bytes(buf[pos:pos + n]), pos + n


def _records(batch, base_offset, count, producer, where):
    pos = BATCH_HEADER.size
    for _ in range(count):
        length, pos = _varint(batch, pos)
        end = pos + length
        pos += 1  # attributes
        _, pos = _varint(batch, pos)  # timestampDelta
        delta, pos = _varint(batch, pos)
        _, pos = _bytes(batch, pos)  # key
        value, pos = _bytes(batch, pos)
        if pos > end:
            raise DiskLogError("%s: record at offset %d overruns its length" % (
                where, base_offset + delta))
        yield (base_offset + delta, value) + producer
        pos = end


def read_segment(path):
    """[(offset, value bytes or None, producer id, producer epoch)] of the data records in one
    segment file (the producer fields are their batch's: -1 when written without idempotence)."""
    with open(path, "rb") as f:
        data = f.read()
    out = []
    pos = 0
    while pos + BATCH_HEADER.size <= len(data):
        (base_offset, batch_length, _epoch, magic, _crc, attributes, _last_delta, _ts, _max_ts,
         producer_id, producer_epoch, _seq, count) = BATCH_HEADER.unpack_from(data, pos)
        end = pos + BATCH_LENGTH_OFFSET_BYTES + batch_length
        if batch_length <= 0 or end > len(data):
            break  # preallocated zeros or a torn tail: the log ends here
        where = "%s at byte %d" % (path, pos)
        if magic != 2:
            raise DiskLogError("%s: magic %d" % (where, magic))
        if not attributes & ATTR_CONTROL:
            if attributes & ATTR_COMPRESSION_MASK:
                raise DiskLogError("%s: compressed batch (codec %d)" % (
                    where, attributes & ATTR_COMPRESSION_MASK))
            out.extend(_records(memoryview(data)[pos:end], base_offset, count,
                                (producer_id, producer_epoch), where))
        pos = end
    return out


def read_partition(data_dir, topic, partition):
    """[(offset, value, producer id, producer epoch)] of one node's copy of topic-partition, in
    offset order; None when the node holds no copy."""
    path = os.path.join(data_dir, "%s-%d" % (topic, partition))
    if not os.path.isdir(path):
        return None
    records = []
    for name in sorted(os.listdir(path)):
        if name.endswith(".log"):
            records.extend(read_segment(os.path.join(path, name)))
    return records
