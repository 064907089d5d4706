"""Transactions, partition side (issue 11): transaction markers written with WriteTxnMarkers,
the last stable offset, Fetch and ListOffsets with isolation_level=read_committed, the aborted
transactions a read_committed Fetch returns, and group offsets committed in a transaction.

Requests are raw Kafka frames built from Kafka's own schemas (kafka_schema_wire), as a
transaction coordinator and a read_committed client send them; responses are decoded here.
Each test names the bug it catches.
"""

import struct
import time

import kafka_schema_wire as ksw
import kafka_wire as kw
from helpers import wait_until
from test_idempotence import create_topic, new_producer_id

TIMEOUT_S = 30
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
TRANSACTION_COORDINATOR_FENCED = 52
UNSTABLE_OFFSET_COMMIT = 88
READ_UNCOMMITTED = 0
READ_COMMITTED = 1
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20


# ---- raw requests ----------------------------------------------------------------------------

class Reader:
    def __init__(self, data):
        self.data = data
        self.off = 0

    def take(self, fmt):
        vals = struct.unpack_from(">" + fmt, self.data, self.off)
        self.off += struct.calcsize(">" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def string(self):
        n = self.take("h")
        s = self.data[self.off:self.off + max(n, 0)].decode()
        self.off += max(n, 0)
        return s

    def bytes(self):
        n = self.take("i")
        b = self.data[self.off:self.off + max(n, 0)]
        self.off += max(n, 0)
        return b


def exchange(port, frame):
    kind, payload = kw.exchange(port, frame)
    assert kind == "response", "the connection closed without an answer"
    return Reader(payload)


def txn_batch(values, pid, epoch, seq, transactional=True):
    """An uncompressed RecordBatch v2 of values from producer (pid, epoch) at sequence seq,
    transactional unless told otherwise."""
    payload = kw.records_section([v.encode() for v in values])
    count = len(values)
    now_ms = int(time.time() * 1000)
    attrs = ATTR_TRANSACTIONAL if transactional else 0
    after_crc = (kw.i16(attrs) + kw.i32(count - 1) + kw.i64(now_ms) + kw.i64(now_ms) +
                 kw.i64(pid) + kw.i16(epoch) + kw.i32(seq) + kw.i32(count) + payload)
    after_length = kw.i32(0) + b"\x02" + struct.pack(">I", kw.crc32c(after_crc)) + after_crc
    return kw.i64(0) + kw.i32(len(after_length)) + after_length


def produce(port, topic, batch, partition=0):
    """(error_code, base_offset) of a Produce v3, acks=all, of batch to one partition."""
    body = (kw.string(None) + kw.i16(-1) + kw.i32(TIMEOUT_S * 1000) + kw.i32(1) +
            kw.string(topic) + kw.i32(1) + kw.i32(partition) + kw.i32(len(batch)) + batch)
    r = exchange(port, kw.frame(kw.header(0, 3, 5) + body))
    assert r.take("i") == 5
    assert r.take("i") == 1
    r.string()
    assert r.take("i") == 1
    _, error, base, _ = r.take("ihqq")
    return error, base


def write_markers(port, pid, epoch, commit, partitions, coordinator_epoch=0, version=0):
    """WriteTxnMarkers of one marker for [(topic, partition)]: {(topic, partition): error}."""
    topics = {}
    for t, p in partitions:
        topics.setdefault(t, []).append(p)
    req = ksw.request("WriteTxnMarkersRequest", 27, version, 9, {
        "Markers": [{"ProducerId": pid, "ProducerEpoch": epoch, "TransactionResult": commit,
                     "Topics": [{"Name": t, "PartitionIndexes": ps} for t, ps in topics.items()],
                     "CoordinatorEpoch": coordinator_epoch}]})
    r = exchange(port, req)
    assert r.take("i") == 9
    flex = version >= 1
    if flex:
        r.take("B")  # the response header's empty tagged fields

    def count():
        return (r.take("B") - 1) if flex else r.take("i")

    def string():
        if not flex:
            return r.string()
        n = r.take("B") - 1
        s = r.data[r.off:r.off + n].decode()
        r.off += n
        return s

    out = {}
    assert count() == 1
    assert r.take("q") == pid
    for _ in range(count()):
        name = string()
        for _ in range(count()):
            index, error = r.take("ih")
            if flex:
                r.take("B")
            out[(name, index)] = error
        if flex:
            r.take("B")
    return out


def fetch(port, topic, offset, isolation, partition=0, version=4):
    """A Fetch (v4..v11, no session) of one partition: (error, high watermark, last stable
    offset, [(producer id, first offset)] or None, [batch bytes])."""
    values = {"ReplicaId": -1, "MaxWaitMs": 0, "MinBytes": 1, "MaxBytes": 1 << 20,
              "IsolationLevel": isolation,
              "Topics": [{"Topic": topic, "Partitions": [
                  {"Partition": partition, "FetchOffset": offset, "PartitionMaxBytes": 1 << 20,
                   "CurrentLeaderEpoch": -1, "LogStartOffset": -1}]}]}
    if version >= 7:
        values["SessionEpoch"] = -1
    r = exchange(port, ksw.request("FetchRequest", 1, version, 4, values))
    assert r.take("i") == 4
    r.take("i")  # throttle
    if version >= 7:
        r.take("hi")  # error, session id
    assert r.take("i") == 1
    r.string()
    assert r.take("i") == 1
    _, error, hw, lso = r.take("ihqq")
    if version >= 5:
        r.take("q")  # log start offset
    n = r.take("i")
    aborted = None if n < 0 else [r.take("qq") for _ in range(n)]
    if version >= 11:
        r.take("i")  # preferred read replica
    records = r.bytes()
    batches = []
    while len(records) >= 12:
        total = 12 + struct.unpack(">i", records[8:12])[0]
        if total > len(records):
            break
        batches.append(records[:total])
        records = records[total:]
    return error, hw, lso, aborted, batches


def batch_info(b):
    """(base offset, last offset, attributes, producer id) of a batch."""
    base = struct.unpack(">q", b[0:8])[0]
    attrs = struct.unpack(">h", b[21:23])[0]
    delta = struct.unpack(">i", b[23:27])[0]
    pid = struct.unpack(">q", b[43:51])[0]
    return base, base + delta, attrs, pid


def list_latest(port, topic, isolation, partition=0):
    """(error, offset) of ListOffsets v2 LATEST for one partition."""
    r = exchange(port, ksw.request("ListOffsetsRequest", 2, 2, 6, {
        "ReplicaId": -1, "IsolationLevel": isolation,
        "Topics": [{"Name": topic, "Partitions": [{"PartitionIndex": partition,
                                                   "Timestamp": -1}]}]}))
    assert r.take("i") == 6
    r.take("i")
    assert r.take("i") == 1
    r.string()
    assert r.take("i") == 1
    _, error, _, offset = r.take("ihqq")
    return error, offset


def marker_of(port, topic, offset):
    """(attributes, control key type) of the control batch at offset (read_uncommitted)."""
    _, _, _, _, batches = fetch(port, topic, offset, READ_UNCOMMITTED)
    b = batches[0]
    base, _, attrs, _ = batch_info(b)
    assert base == offset
    # One record: length, attributes, timestamp delta, offset delta, key length, key.
    rec = b[61:]
    pos = 0

    def varint():
        nonlocal pos
        shift = result = 0
        while True:
            byte = rec[pos]
            pos += 1
            result |= (byte & 0x7f) << shift
            shift += 7
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
    varint()
    pos += 1
    varint()
    varint()
    klen = varint()
    key = rec[pos:pos + klen]
    return attrs, struct.unpack(">hh", key)[1]


# ---- WriteTxnMarkers -------------------------------------------------------------------------

def test_write_txn_markers_appends_control_batches(broker, topic):
    """WriteTxnMarkers (api 27) was not served at all: a transaction coordinator could not end
    a transaction. Each marker is a control batch (transactional | control) of Kafka's
    ABORT/COMMIT control record; the answer is per partition, with UNKNOWN_TOPIC_OR_PARTITION
    for a partition that does not exist."""
    create_topic(broker.bootstrap, topic, partitions=2)
    pid = new_producer_id(broker.port)
    assert produce(broker.port, topic, txn_batch(["a", "b"], pid, 0, 0)) == (NONE, 0)
    out = write_markers(broker.port, pid, 0, True, [(topic, 0), (topic, 1), (topic, 7)])
    assert out == {(topic, 0): NONE, (topic, 1): NONE, (topic, 7): UNKNOWN_TOPIC_OR_PARTITION}
    attrs, kind = marker_of(broker.port, topic, 2)
    assert attrs & (ATTR_TRANSACTIONAL | ATTR_CONTROL) == ATTR_TRANSACTIONAL | ATTR_CONTROL
    assert kind == 1  # COMMIT
    # Version 1 (flexible) too, an ABORT.
    assert produce(broker.port, topic, txn_batch(["c"], pid, 0, 2)) == (NONE, 3)
    assert write_markers(broker.port, pid, 0, False, [(topic, 0)], version=1) == {
        (topic, 0): NONE}
    assert marker_of(broker.port, topic, 4)[1] == 0  # ABORT


def test_write_txn_markers_fences_stale_epochs(broker, topic):
    """A marker of an older producer epoch (a zombie coordinator's, or for a fenced producer) is
    INVALID_PRODUCER_EPOCH, and one of an older coordinator epoch than the partition's last
    marker TRANSACTION_COORDINATOR_FENCED, as Kafka's appendEndTxnMarker; neither is written.
    A retried marker of a transaction already ended succeeds."""
    create_topic(broker.bootstrap, topic)
    pid = new_producer_id(broker.port)
    assert produce(broker.port, topic, txn_batch(["a"], pid, 3, 0)) == (NONE, 0)
    assert write_markers(broker.port, pid, 2, True, [(topic, 0)], coordinator_epoch=5) == {
        (topic, 0): INVALID_PRODUCER_EPOCH}
    assert write_markers(broker.port, pid, 3, True, [(topic, 0)], coordinator_epoch=5) == {
        (topic, 0): NONE}
    assert write_markers(broker.port, pid, 3, True, [(topic, 0)], coordinator_epoch=5) == {
        (topic, 0): NONE}
    assert write_markers(broker.port, pid, 3, True, [(topic, 0)], coordinator_epoch=4) == {
        (topic, 0): TRANSACTION_COORDINATOR_FENCED}
    _, hw, _, _, _ = fetch(broker.port, topic, 0, READ_UNCOMMITTED)
    assert hw == 3  # the batch and two markers


# ---- last stable offset, read_committed, aborted transactions --------------------------------

def offsets_of(batches):
    return [batch_info(b)[:2] for b in batches]


def check_isolation(port, topic, pid_a):
    """The answers after: A (pid_a) at 0..1 aborted by the marker at 4, a plain batch at 2, B at
    3 committed by the marker at 5."""
    error, hw, lso, aborted, batches = fetch(port, topic, 0, READ_COMMITTED)
    assert (error, hw, lso) == (NONE, 6, 6)
    assert offsets_of(batches) == [(0, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
    assert aborted == [(pid_a, 0)]
    # From past A's marker no aborted transaction overlaps.
    assert fetch(port, topic, 5, READ_COMMITTED)[3] == []
    assert list_latest(port, topic, READ_COMMITTED) == (NONE, 6)
    assert list_latest(port, topic, READ_UNCOMMITTED) == (NONE, 6)


def test_read_committed_stops_at_last_stable_offset(make_broker, topic):
    """Fetch answered last_stable_offset = high watermark and read_committed read past open
    transactions, with no aborted transactions: a read_committed consumer saw uncommitted and
    aborted records. Now: the last stable offset is the first offset of the oldest open
    transaction; read_committed reads up to it and gets the aborted transactions overlapping
    what it read; ListOffsets LATEST with read_committed is the last stable offset; all of it
    survives a restart (rebuilt from the log)."""
    broker = make_broker()
    broker.start()
    port = broker.port
    create_topic(broker.bootstrap, topic)
    pid_a = new_producer_id(port)
    pid_b = new_producer_id(port)
    assert produce(port, topic, txn_batch(["a1", "a2"], pid_a, 0, 0)) == (NONE, 0)
    assert produce(port, topic, kw.record_batch([b"plain"])) == (NONE, 2)
    assert produce(port, topic, txn_batch(["b1"], pid_b, 0, 0)) == (NONE, 3)

    error, hw, lso, aborted, batches = fetch(port, topic, 0, READ_COMMITTED)
    assert (error, hw, lso, aborted, batches) == (NONE, 4, 0, [], [])
    error, hw, lso, aborted, batches = fetch(port, topic, 0, READ_UNCOMMITTED)
    assert (error, hw, lso, aborted) == (NONE, 4, 0, None)
    assert offsets_of(batches) == [(0, 1), (2, 2), (3, 3)]
    assert list_latest(port, topic, READ_COMMITTED) == (NONE, 0)
    assert list_latest(port, topic, READ_UNCOMMITTED) == (NONE, 4)

    # A aborted: stable up to B's first offset.
    assert write_markers(port, pid_a, 0, False, [(topic, 0)]) == {(topic, 0): NONE}
    error, hw, lso, aborted, batches = fetch(port, topic, 0, READ_COMMITTED)
    assert (error, hw, lso) == (NONE, 5, 3)
    assert offsets_of(batches) == [(0, 1), (2, 2)]
    assert aborted == [(pid_a, 0)]
    # Fetch v11 (flexible is v12+: the same fields) agrees.
    assert fetch(port, topic, 0, READ_COMMITTED, version=11)[2:4] == (3, [(pid_a, 0)])

    assert write_markers(port, pid_b, 0, True, [(topic, 0)]) == {(topic, 0): NONE}
    check_isolation(port, topic, pid_a)

    broker.stop()
    broker.start()
    wait_until(lambda: fetch(broker.port, topic, 0, READ_COMMITTED)[0] == NONE, TIMEOUT_S,
               "the partition served again")
    check_isolation(broker.port, topic, pid_a)


def test_transactional_produce_rules(broker, topic):
    """Transactional batches follow the idempotence rules, and a plain batch of a producer whose
    transaction is open on the partition is INVALID_TXN_STATE (Kafka's ProducerAppendInfo);
    a stale epoch is INVALID_PRODUCER_EPOCH, also for transactional producers (Kafka 2.7+)."""
    create_topic(broker.bootstrap, topic)
    pid = new_producer_id(broker.port)
    assert produce(broker.port, topic, txn_batch(["a"], pid, 1, 0)) == (NONE, 0)
    assert produce(broker.port, topic, txn_batch(["b"], pid, 1, 1, transactional=False))[0] == \
        INVALID_TXN_STATE
    assert produce(broker.port, topic, txn_batch(["c"], pid, 0, 0))[0] == INVALID_PRODUCER_EPOCH
    assert produce(broker.port, topic, txn_batch(["a"], pid, 1, 0)) == (NONE, 0)  # duplicate
    assert write_markers(broker.port, pid, 1, True, [(topic, 0)]) == {(topic, 0): NONE}
    # Ended: the next transaction goes on at the next sequence.
    assert produce(broker.port, topic, txn_batch(["d"], pid, 1, 1)) == (NONE, 2)


# ---- group offsets in transactions -----------------------------------------------------------

def offsets_partition(group, partitions=50):
    """Kafka's __consumer_offsets partition of a group: abs(String.hashCode) mod partitions."""
    h = 0
    for ch in group.encode():
        h = (h * 31 + ch) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


def txn_offset_commit(port, group, pid, epoch, topic, partition, offset):
    """The error of TxnOffsetCommit v2 of one partition's offset."""
    r = exchange(port, ksw.request("TxnOffsetCommitRequest", 28, 2, 12, {
        "TransactionalId": "tx-" + group, "GroupId": group, "ProducerId": pid,
        "ProducerEpoch": epoch,
        "Topics": [{"Name": topic, "Partitions": [
            {"PartitionIndex": partition, "CommittedOffset": offset, "CommittedLeaderEpoch": -1,
             "CommittedMetadata": "m"}]}]}))
    assert r.take("i") == 12
    r.take("i")
    assert r.take("i") == 1
    r.string()
    assert r.take("i") == 1
    index, error = r.take("ih")
    assert index == partition
    return error


def offset_fetch(port, group, topic, partition, require_stable):
    """(error, committed offset) of OffsetFetch v7 (flexible) for one partition."""
    r = exchange(port, ksw.request("OffsetFetchRequest", 9, 7, 13, {
        "GroupId": group, "Topics": [{"Name": topic, "PartitionIndexes": [partition]}],
        "RequireStable": require_stable}))
    assert r.take("i") == 13
    r.take("B")  # header tagged fields
    r.take("i")  # throttle

    def compact_string():
        n = r.take("B") - 1
        s = r.data[r.off:r.off + max(n, 0)]
        r.off += max(n, 0)
        return s
    assert r.take("B") - 1 == 1
    compact_string()
    assert r.take("B") - 1 == 1
    index, offset, _ = r.take("iqi")
    compact_string()
    error = r.take("h")
    assert index == partition
    return error, offset


def test_txn_offset_commit_visible_at_commit_marker(make_broker, topic):
    """TxnOffsetCommit (api 28) was not served, so send_offsets_to_transaction failed. Now the
    offsets are stored as the producer's pending offsets (a transactional batch on
    __consumer_offsets in Kafka's record format): OffsetFetch with require_stable answers
    UNSTABLE_OFFSET_COMMIT while they are pending, a COMMIT marker on the group's partition makes
    them the committed offsets, an ABORT drops them; pending offsets and the decisions survive a
    restart (the coordinator reads them back from the log)."""
    broker = make_broker()
    broker.start()
    port = broker.port
    create_topic(broker.bootstrap, topic)
    group = "g-" + topic
    offsets_tp = ("__consumer_offsets", offsets_partition(group))
    pid = new_producer_id(port)
    wait_until(lambda: txn_offset_commit(port, group, pid, 0, topic, 0, 5) == NONE, TIMEOUT_S,
               "the group coordinator")
    assert offset_fetch(port, group, topic, 0, True) == (UNSTABLE_OFFSET_COMMIT, -1)
    assert offset_fetch(port, group, topic, 0, False) == (NONE, -1)
    assert write_markers(port, pid, 0, True, [offsets_tp]) == {offsets_tp: NONE}
    assert offset_fetch(port, group, topic, 0, True) == (NONE, 5)

    assert txn_offset_commit(port, group, pid, 0, topic, 0, 9) == NONE
    assert write_markers(port, pid, 0, False, [offsets_tp]) == {offsets_tp: NONE}
    assert offset_fetch(port, group, topic, 0, True) == (NONE, 5)

    # Pending across a restart, then committed.
    assert txn_offset_commit(port, group, pid, 0, topic, 0, 12) == NONE
    broker.stop()
    broker.start()

    def loaded():
        error, offset = offset_fetch(broker.port, group, topic, 0, True)
        return error == UNSTABLE_OFFSET_COMMIT
    wait_until(loaded, TIMEOUT_S, "the group's pending offsets loaded")
    assert offset_fetch(broker.port, group, topic, 0, False) == (NONE, 5)
    assert write_markers(broker.port, pid, 0, True, [offsets_tp]) == {offsets_tp: NONE}
    assert offset_fetch(broker.port, group, topic, 0, True) == (NONE, 12)
    broker.stop()
    broker.start()
    wait_until(lambda: offset_fetch(broker.port, group, topic, 0, True) == (NONE, 12), TIMEOUT_S,
               "the committed offsets loaded")


def test_producer_state_snapshot_and_tail(make_broker, topic):
    """Producer-state snapshots: a clean stop writes the partition's producer state (with its open
    transactions; the aborted ones are in the segments' .txnindex files) to producer-state.snapshot and a start reads only the log after it;
    after a kill -9 the last snapshot plus the log tail give the same state; a corrupt snapshot is
    never trusted (removed, the whole log read instead)."""
    import os
    broker = make_broker()
    broker.start()
    port = broker.port
    create_topic(broker.bootstrap, topic)
    pid_a = new_producer_id(port)
    pid_b = new_producer_id(port)
    assert produce(port, topic, txn_batch(["a1"], pid_a, 0, 0)) == (NONE, 0)
    assert write_markers(port, pid_a, 0, False, [(topic, 0)]) == {(topic, 0): NONE}
    assert produce(port, topic, txn_batch(["b1"], pid_b, 0, 0)) == (NONE, 2)
    broker.stop()
    snapshot = os.path.join(broker.data_dir, "%s-0" % topic, "producer-state.snapshot")
    assert os.path.exists(snapshot)

    def answers(port, hw):
        error, got_hw, lso, aborted, _ = fetch(port, topic, 0, READ_COMMITTED)
        assert (error, got_hw) == (NONE, hw)
        return lso, aborted

    broker.start()
    wait_until(lambda: fetch(broker.port, topic, 0, READ_COMMITTED)[0] == NONE, TIMEOUT_S,
               "served")
    assert answers(broker.port, 3) == (2, [(pid_a, 0)])
    # A duplicate of B's batch is still known (idempotence state from the snapshot).
    assert produce(broker.port, topic, txn_batch(["b1"], pid_b, 0, 0)) == (NONE, 2)
    # Past the snapshot: A aborts again, B commits; then a crash.
    assert produce(broker.port, topic, txn_batch(["a2"], pid_a, 0, 1)) == (NONE, 3)
    assert write_markers(broker.port, pid_a, 0, False, [(topic, 0)]) == {(topic, 0): NONE}
    assert write_markers(broker.port, pid_b, 0, True, [(topic, 0)]) == {(topic, 0): NONE}
    broker.kill()
    broker.start()
    wait_until(lambda: fetch(broker.port, topic, 0, READ_COMMITTED)[0] == NONE, TIMEOUT_S,
               "served")
    assert answers(broker.port, 6) == (6, [(pid_a, 0), (pid_a, 3)])
    broker.stop()
    # A flipped byte: ignored and removed, the log read whole.
    with open(snapshot, "r+b") as f:
        f.seek(20)
        b = f.read(1)
        f.seek(20)
        f.write(bytes([b[0] ^ 0x40]))
    broker.start()
    wait_until(lambda: fetch(broker.port, topic, 0, READ_COMMITTED)[0] == NONE, TIMEOUT_S,
               "served")
    assert answers(broker.port, 6) == (6, [(pid_a, 0), (pid_a, 3)])
    assert produce(broker.port, topic, txn_batch(["b1"], pid_b, 0, 0))[0] == NONE


# ---- three nodes -----------------------------------------------------------------------------

def test_new_leader_has_last_stable_offset_and_aborted(tmp_path):
    """Followers keep the transaction state from the committed log, so a new leader answers the
    same last stable offset and aborted transactions after the leader is killed (kill -9), and
    takes the open transaction's COMMIT marker. Catches: transaction state kept on the leader
    only; a marker (a transactional control batch) taken for Raft's no-op by the followers,
    which refused it."""
    from cluster_harness import Cluster
    from test_idempotence import FAST_ISR, wait_leader
    c = Cluster(tmp_path, 3, extra_args=FAST_ISR).start()
    try:
        attempts = iter(range(1, 1000))

        def prepared():
            # On a starved host (the suite runs tests in parallel on two cores) a follower may
            # call an election mid-sequence: the writes then answer NOT_LEADER_OR_FOLLOWER, and
            # the sequence starts over on a fresh topic rather than retry a write half-done.
            topic = "tx3-%d" % next(attempts)
            create_topic(c.bootstrap(1), topic, replication=3)
            pid_a = new_producer_id(c.nodes[1].port)
            pid_b = new_producer_id(c.nodes[1].port)
            leader = wait_leader(c, topic, [1, 2, 3])
            port = c.nodes[leader].port
            answers = [produce(port, topic, txn_batch(["a"], pid_a, 0, 0)),
                       produce(port, topic, kw.record_batch([b"plain"])),
                       produce(port, topic, txn_batch(["b"], pid_b, 0, 0))]
            errors = [err for err, _ in answers]
            errors.append(write_markers(port, pid_a, 0, False, [(topic, 0)])[(topic, 0)])
            error, _, lso, aborted, _ = fetch(port, topic, 0, READ_COMMITTED)
            errors.append(error)
            assert set(errors) <= {NONE, NOT_LEADER_OR_FOLLOWER}, errors
            if set(errors) != {NONE}:
                return None
            a_first, b_first = answers[0][1], answers[2][1]
            assert (lso, aborted) == (b_first, [(pid_a, a_first)])
            return topic, leader, pid_a, pid_b, a_first, b_first
        topic, leader, pid_a, pid_b, a_first, b_first = wait_until(
            prepared, TIMEOUT_S, "the transactions written at one leader")
        c.nodes[leader].kill()
        alive = [n for n in (1, 2, 3) if n != leader]

        def answered():
            new = wait_leader(c, topic, alive)
            error, _, lso, aborted, _ = fetch(c.nodes[new].port, topic, 0, READ_COMMITTED)
            return (new, lso, aborted) if error == NONE else None
        new, lso, aborted = wait_until(answered, TIMEOUT_S, "the new leader serving")
        assert (lso, aborted) == (b_first, [(pid_a, a_first)])

        def committed():
            # A new leader serves reads at once but refuses writes with NOT_LEADER_OR_FOLLOWER
            # until the first entry of its term is committed (and leadership may still move
            # between the survivors): a coordinator retries then, at the current leader.
            leader = wait_leader(c, topic, alive)
            error = write_markers(c.nodes[leader].port, pid_b, 0, True, [(topic, 0)])[(topic, 0)]
            assert error in (NONE, NOT_LEADER_OR_FOLLOWER), error
            return error == NONE
        wait_until(committed, TIMEOUT_S, "the COMMIT marker taken")

        def read():
            # Leadership may move again between the two survivors (a starved follower's
            # election): read at whichever node leads now.
            leader = wait_leader(c, topic, alive)
            answer = fetch(c.nodes[leader].port, topic, 0, READ_COMMITTED)
            assert answer[0] in (NONE, NOT_LEADER_OR_FOLLOWER), answer[0]
            return answer[1:] if answer[0] == NONE else None
        hw, lso, aborted, batches = wait_until(read, TIMEOUT_S, "a read at the leader")
        assert (lso, aborted) == (hw, [(pid_a, a_first)])
        assert b_first in [batch_info(b)[0] for b in batches]
    finally:
        c.stop()


# ---- a real read_committed consumer ------------------------------------------------------------

def consume_values(bootstrap, topic, isolation, end_offset):
    """The values confluent-kafka (librdkafka) delivers from partition 0 with the isolation level,
    reading until its position reaches end_offset."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "rc-%d" % time.monotonic_ns(),
                  "enable.auto.commit": False, "isolation.level": isolation})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value().decode())
        if c.position([TopicPartition(topic, 0)])[0].offset >= end_offset:
            break
    c.close()
    return got


def test_librdkafka_read_committed_skips_aborted(broker, topic):
    """librdkafka's read_committed consumer drops the records of aborted transactions using the
    aborted list Fetch returns, skips the markers, and stops at the last stable offset; its
    read_uncommitted consumer sees every record. Catches an aborted list a real client cannot
    use (wrong first offsets, or missing for a transaction that started before the fetch)."""
    create_topic(broker.bootstrap, topic)
    port = broker.port
    pid_a = new_producer_id(port)
    pid_b = new_producer_id(port)
    pid_c = new_producer_id(port)
    assert produce(port, topic, txn_batch(["a1", "a2"], pid_a, 0, 0))[0] == NONE  # 0-1
    assert produce(port, topic, txn_batch(["b1"], pid_b, 0, 0))[0] == NONE  # 2
    assert produce(port, topic, kw.record_batch([b"plain"]))[0] == NONE  # 3
    assert produce(port, topic, txn_batch(["a3"], pid_a, 0, 2))[0] == NONE  # 4
    assert write_markers(port, pid_a, 0, False, [(topic, 0)]) == {(topic, 0): NONE}  # 5
    assert write_markers(port, pid_b, 0, True, [(topic, 0)]) == {(topic, 0): NONE}  # 6
    assert produce(port, topic, txn_batch(["c1"], pid_c, 0, 0))[0] == NONE  # 7: open
    assert fetch(port, topic, 0, READ_COMMITTED)[2] == 7
    assert consume_values(broker.bootstrap, topic, "read_committed", 7) == ["b1", "plain"]
    assert consume_values(broker.bootstrap, topic, "read_uncommitted", 8) == [
        "a1", "a2", "b1", "plain", "a3", "c1"]


# ---- the aborted-transaction index -------------------------------------------------------------

SMALL_SEGMENT = {"segment.bytes": "65536"}  # log.segment.bytes' minimum: many segments


def create_small_segment_topic(bootstrap, name, replication=1):
    """A one-partition topic whose segments roll at 64 KiB, led and open."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, 1, replication, config=SMALL_SEGMENT)],
                              request_timeout=TIMEOUT_S)
    fut[name].result(timeout=TIMEOUT_S)

    def led():
        t = admin.list_topics(topic=name, timeout=TIMEOUT_S).topics[name]
        return t.error is None and len(t.partitions) == 1 and all(
            p.leader >= 0 and p.error is None for p in t.partitions.values())
    wait_until(led, TIMEOUT_S, "%s led" % name)


def run_transactions(leader_port, topic, pids, count, seqs):
    """count transactions, each a 10 KiB batch of 10 records of one of pids in turn, two of
    three aborted: the values a read_committed reader must see, in order. leader_port() is the
    partition leader's port; a request that meets a leader change is sent again (a batch
    retried is a duplicate, a marker retried ends nothing)."""
    committed = []

    def until_done(send):
        def sent():
            error = send(leader_port())
            assert error in (NONE, NOT_LEADER_OR_FOLLOWER), error
            return error == NONE
        wait_until(sent, TIMEOUT_S, "a request answered by the leader")
    for i in range(count):
        pid = pids[i % len(pids)]
        values = ["t%03d-%d-%s" % (i, k, "x" * 1000) for k in range(10)]
        batch = txn_batch(values, pid, 0, seqs[pid])
        until_done(lambda port: produce(port, topic, batch)[0])
        seqs[pid] += len(values)
        commit = i % 3 == 2
        until_done(lambda port: write_markers(port, pid, 0, commit, [(topic, 0)])[(topic, 0)])
        if commit:
            committed += values
    return committed


def txn_index_files(data_dir, topic):
    import os
    d = os.path.join(data_dir, "%s-0" % topic)
    return [n for n in os.listdir(d) if n.endswith(".txnindex")]


def test_aborted_index_over_segments_and_restarts(make_broker, topic):
    """Issue 11 (an aborted-transaction index per segment): a read_committed consumer starting
    at offset 0 after many aborted transactions spread over many small segments gets none of
    their records, and still none after a kill -9 and after a clean restart (the index is on
    disk, a .txnindex file beside each segment holding ABORT markers, and rebuilt from the log
    tail after a crash). Catches: aborted transactions forgotten (a capped in-memory list, or
    index entries a restart loses), so a consumer far behind sees aborted records."""
    broker = make_broker()
    broker.start()
    create_small_segment_topic(broker.bootstrap, topic)
    pids = [new_producer_id(broker.port) for _ in range(2)]
    seqs = {p: 0 for p in pids}
    committed = run_transactions(lambda: broker.port, topic, pids, 45, seqs)
    end = list_latest(broker.port, topic, READ_COMMITTED)[1]
    assert end == 45 * 11
    assert len(txn_index_files(broker.data_dir, topic)) >= 4
    assert consume_values(broker.bootstrap, topic, "read_committed", end) == committed
    # Past the last snapshot (a roll), then a crash: the tail's entries are rebuilt.
    committed += run_transactions(lambda: broker.port, topic, pids, 4, seqs)
    end = list_latest(broker.port, topic, READ_COMMITTED)[1]
    broker.kill()
    broker.start()
    wait_until(lambda: fetch(broker.port, topic, 0, READ_COMMITTED)[0] == NONE, TIMEOUT_S,
               "served")
    assert consume_values(broker.bootstrap, topic, "read_committed", end) == committed
    broker.stop()
    broker.start()
    wait_until(lambda: fetch(broker.port, topic, 0, READ_COMMITTED)[0] == NONE, TIMEOUT_S,
               "served")
    assert consume_values(broker.bootstrap, topic, "read_committed", end) == committed
    assert len(consume_values(broker.bootstrap, topic, "read_uncommitted", end)) == 49 * 10


def test_aborted_index_after_leader_moves(tmp_path):
    """Issue 11: on a 3-node cluster the followers build the same aborted-transaction index from
    the committed log, so after the leader is killed a read_committed consumer reading from
    offset 0 on the new leader gets none of the aborted records spread over many segments.
    Catches: index entries written by the leader only."""
    from cluster_harness import Cluster
    from test_idempotence import FAST_ISR, wait_leader
    c = Cluster(tmp_path, 3, extra_args=FAST_ISR).start()
    try:
        create_small_segment_topic(c.bootstrap(1), "txi", replication=3)
        pids = [new_producer_id(c.nodes[1].port) for _ in range(2)]
        seqs = {p: 0 for p in pids}

        def leader_port():
            return c.nodes[wait_leader(c, "txi", [1, 2, 3])].port
        # The first requests wait for the leader (ready once its term's no-op committed).
        committed = run_transactions(leader_port, "txi", pids, 30, seqs)

        def latest():
            leader = wait_leader(c, "txi", [1, 2, 3])
            error, offset = list_latest(c.nodes[leader].port, "txi", READ_COMMITTED)
            return (leader, offset) if error == NONE else None
        leader, end = wait_until(latest, TIMEOUT_S, "the last stable offset")
        c.nodes[leader].kill()
        alive = [n for n in (1, 2, 3) if n != leader]

        def served():
            new = wait_leader(c, "txi", alive)
            error, hw, _, _, _ = fetch(c.nodes[new].port, "txi", 0, READ_COMMITTED)
            return new if error == NONE and hw >= end else None
        new = wait_until(served, TIMEOUT_S, "the new leader serving")
        assert consume_values(c.bootstrap(new), "txi", "read_committed", end) == committed
    finally:
        c.stop()
