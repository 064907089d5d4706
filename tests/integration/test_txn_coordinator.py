"""Transactions, the coordinator side (issue 11): FindCoordinator for transactional ids,
InitProducerId with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, the
markers it sends, DescribeTransactions and ListTransactions, transaction timeouts, with
confluent-kafka's transactional producer (librdkafka) on a single node and on a three-node
cluster.

Each test names the bug it catches. Faults are real: kill -9 of a leader.
"""

import glob
import os
import struct
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as kw
from cluster_harness import Cluster
from helpers import wait_until

TIMEOUT_S = 60
API_FIND_COORDINATOR = 10
API_INIT_PRODUCER_ID = 22
API_ADD_PARTITIONS_TO_TXN = 24
API_END_TXN = 26
API_DESCRIBE_TRANSACTIONS = 65
API_LIST_TRANSACTIONS = 66
UNKNOWN_SERVER_ERROR = -1
NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
PRODUCER_FENCED = 90
TRANSACTIONAL_ID_NOT_FOUND = 105

RETRIABLE = (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
             CONCURRENT_TRANSACTIONS)


# ---- raw requests ----------------------------------------------------------------------------

def find_coordinator_v1(port, key, key_type=1):
    """(error, node_id, host, port) of FindCoordinator v1."""
    body = kw.string(key) + bytes([key_type])  # noqa: E501
    kind, payload = kw.exchange(port, kw.frame(kw.header(API_FIND_COORDINATOR, 1, 5) + body))
    assert kind == "response", "the connection closed without an answer"
    corr, _throttle, error = struct.unpack(">iih", payload[:10])
    assert corr == 5
    rest = payload[10:]
    msg_len = struct.unpack(">h", rest[:2])[0]
    rest = rest[2 + max(msg_len, 0):]
    node, host_len = struct.unpack(">ih", rest[:6])
    host = rest[6:6 + host_len].decode()
    (port_,) = struct.unpack(">i", rest[6 + host_len:10 + host_len])
    return error, node, host, port_


def init_producer_id_v3(port, txn_id, timeout_ms, pid=-1, epoch=-1):
    """(error, producer_id, epoch) of InitProducerId v3 (flexible, KIP-360's fields)."""
    raw = txn_id.encode()
    body = (kw.uvarint(len(raw) + 1) + raw + kw.i32(timeout_ms) + kw.i64(pid) + kw.i16(epoch) +
            b"\x00")
    kind, payload = kw.exchange(port, kw.frame(
        kw.header(API_INIT_PRODUCER_ID, 3, 9, flexible=True) + body))
    assert kind == "response", "the connection closed without an answer"
    corr = struct.unpack(">i", payload[:4])[0]
    assert corr == 9
    _throttle, error, pid_, epoch_ = struct.unpack(">ihqh", payload[5:21])
    return error, pid_, epoch_


def end_txn_v1(port, txn_id, pid, epoch, commit):
    body = kw.string(txn_id) + kw.i64(pid) + kw.i16(epoch) + bytes([1 if commit else 0])
    kind, payload = kw.exchange(port, kw.frame(kw.header(API_END_TXN, 1, 13) + body))
    assert kind == "response", "the connection closed without an answer"
    corr, _throttle, error = struct.unpack(">iih", payload[:10])
    assert corr == 13
    return error


def retry(fn, what):
    """fn() until its first value (an error code) is not retriable."""
    def once():
        out = fn()
        err = out[0] if isinstance(out, tuple) else out
        return None if err in RETRIABLE else out
    return wait_until(once, TIMEOUT_S, what)


# ---- helpers with confluent-kafka ------------------------------------------------------------

def create_topic(bootstrap, name, partitions=1, replication=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, replication)])
    futures[name].result(TIMEOUT_S)


def txn_producer(bootstrap, txn_id, **extra):
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id,
            "transaction.timeout.ms": 60000, "message.timeout.ms": 60000}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(TIMEOUT_S)
    return p


def read_all(bootstrap, topic, isolation, expect_count=None, partitions=1, idle_s=3.0):
    """Every value of the topic as a consumer of that isolation level sees it (until idle_s
    with nothing new once expect_count values, if given, were seen)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "read-%s-%s" % (topic, isolation),
                  "isolation.level": isolation, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values = []
        deadline = time.monotonic() + TIMEOUT_S
        last = time.monotonic()
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                if (expect_count is None or len(values) >= expect_count) and \
                        time.monotonic() - last > idle_s:
                    break
                continue
            values.append(m.value().decode())
            last = time.monotonic()
        return values
    finally:
        c.close()


# ---- single node -----------------------------------------------------------------------------

def test_find_coordinator_names_a_node_for_transactional_ids(broker):
    """FindCoordinator with key type 1 answered COORDINATOR_NOT_AVAILABLE for every id, so no
    transactional producer could start."""
    error, node, host, port = retry(lambda: find_coordinator_v1(broker.port, "txn-a"),
                                    "a transaction coordinator")
    assert (error, host, port) == (NONE, "127.0.0.1", broker.port)
    assert node >= 0


def test_commit_single_node(broker, topic):
    """init/begin/produce/commit with confluent-kafka: the transactional producer failed at
    init_transactions (no coordinator); committed records are read back."""
    create_topic(broker.bootstrap, topic)
    p = txn_producer(broker.bootstrap, "tx-" + topic)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=b"v%d" % i)
    p.commit_transaction(TIMEOUT_S)
    values = read_all(broker.bootstrap, topic, "read_uncommitted", expect_count=10)
    assert values == ["v%d" % i for i in range(10)]


def test_second_producer_fences_the_first(broker, topic):
    """A second producer with the same transactional.id must fence the first: its commit
    fails with a fatal fenced error (a zombie must never commit)."""
    create_topic(broker.bootstrap, topic)
    txn_id = "tx-" + topic
    first = txn_producer(broker.bootstrap, txn_id)
    first.begin_transaction()
    first.produce(topic, value=b"zombie")
    first.flush(TIMEOUT_S)
    second = txn_producer(broker.bootstrap, txn_id)
    second.begin_transaction()
    second.produce(topic, value=b"live")
    second.commit_transaction(TIMEOUT_S)
    with pytest.raises(KafkaException) as info:
        first.commit_transaction(TIMEOUT_S)
    err = info.value.args[0]
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH), err


def test_init_producer_id_bumps_epoch_and_refuses_long_timeout(broker):
    """InitProducerId with a transactional id: the same id gets the same producer id with the
    epoch bumped; a timeout over transaction.max.timeout.ms is INVALID_TRANSACTION_TIMEOUT."""
    error, pid, epoch = retry(lambda: init_producer_id_v3(broker.port, "raw-a", 10000),
                              "InitProducerId")
    assert (error, epoch) == (NONE, 0) and pid >= 0
    error, pid2, epoch2 = retry(lambda: init_producer_id_v3(broker.port, "raw-a", 10000, pid, 0),
                                "InitProducerId again")
    assert (error, pid2, epoch2) == (NONE, pid, 1)
    # A retry of that bump (its answer lost) gets the same answer, not a second bump.
    assert init_producer_id_v3(broker.port, "raw-a", 10000, pid, 0) == (NONE, pid, 1)
    assert init_producer_id_v3(broker.port, "raw-a", 10000, pid, 1) == (NONE, pid, 2)
    # KIP-360: an older epoch is fenced (INVALID_PRODUCER_EPOCH before v4, KIP-588).
    error, _, _ = init_producer_id_v3(broker.port, "raw-a", 10000, pid, 0)
    assert error == INVALID_PRODUCER_EPOCH
    error, _, _ = init_producer_id_v3(broker.port, "raw-b", 900001)
    assert error == INVALID_TRANSACTION_TIMEOUT
    # EndTxn with no transaction going on.
    assert end_txn_v1(broker.port, "raw-a", pid, 2, True) == INVALID_TXN_STATE


def add_partitions_v0(txn_id, pid, epoch, topic, correlation_id):
    """The frame of an AddPartitionsToTxn v0 adding partition 0 of topic."""
    body = (kw.string(txn_id) + kw.i64(pid) + kw.i16(epoch) + kw.i32(1) + kw.string(topic) +
            kw.i32(1) + kw.i32(0))
    return kw.frame(kw.header(API_ADD_PARTITIONS_TO_TXN, 0, correlation_id) + body)


def add_partitions_v0_error(payload, correlation_id):
    corr, _throttle, topics = struct.unpack(">iii", payload[:12])
    assert (corr, topics) == (correlation_id, 1)
    name_len = struct.unpack(">h", payload[12:14])[0]
    count, _partition, error = struct.unpack(">iih", payload[14 + name_len:24 + name_len])
    assert count == 1
    return error


def test_next_transaction_waits_for_the_markers_not_refused(broker, topic):
    """A client begins its next transaction right after EndTxn is answered, while the markers
    of the last one are still being written. The coordinator answered that AddPartitionsToTxn
    CONCURRENT_TRANSACTIONS at once, and librdkafka waited 20 ms or more before asking again:
    most of every short transaction's time (measured: 4,000 records/s at 100 records a
    transaction on 3 nodes). It must hold the request until the transaction completes and then
    add the partition. EndTxn and the next AddPartitionsToTxn go pipelined on one connection,
    so the second arrives before the markers can be written."""
    create_topic(broker.bootstrap, topic)
    txn_id = "hold-" + topic
    retry(lambda: find_coordinator_v1(broker.port, txn_id), "a transaction coordinator")
    error, pid, epoch = retry(lambda: init_producer_id_v3(broker.port, txn_id, 60000),
                              "InitProducerId")
    assert error == NONE
    for round_ in range(3):
        kind, payload = kw.exchange(broker.port, add_partitions_v0(txn_id, pid, epoch, topic, 3))
        assert kind == "response"
        assert add_partitions_v0_error(payload, 3) == NONE
        end = kw.frame(kw.header(API_END_TXN, 1, 4) + kw.string(txn_id) + kw.i64(pid) +
                       kw.i16(epoch) + b"\x01")
        s = kw.send(broker.port, end + add_partitions_v0(txn_id, pid, epoch, topic, 5))
        try:
            kind, payload = kw.receive(s)
            assert kind == "response"
            assert struct.unpack(">iih", payload[:10]) == (4, 0, NONE), "round %d" % round_
            kind, payload = kw.receive(s)
            assert kind == "response"
            assert add_partitions_v0_error(payload, 5) == NONE, "round %d" % round_
        finally:
            s.close()
        assert end_txn_v1(broker.port, txn_id, pid, epoch, False) == NONE


def list_transactions_v0(port):
    """(error, [(transactional id, producer id, state)]) of ListTransactions v0 (flexible)."""
    body = b"\x01" + b"\x01" + b"\x00"  # no state filters, no producer id filters, no tags
    kind, payload = kw.exchange(port, kw.frame(
        kw.header(API_LIST_TRANSACTIONS, 0, 21, flexible=True) + body))
    assert kind == "response", "the connection closed without an answer"
    r = WireReader(payload)
    assert r.take(">i") == 21
    r.tags()
    r.take(">i")  # throttle
    error = r.take(">h")
    for _ in range(r.uvarint() - 1):
        r.compact_string()
    out = []
    for _ in range(r.uvarint() - 1):
        tid = r.compact_string()
        pid = r.take(">q")
        state = r.compact_string()
        r.tags()
        out.append((tid, pid, state))
    return error, out


def describe_transactions_v0(port, txn_id):
    """(error, state, producer id, epoch, timeout ms, [(topic, [partitions])]) of
    DescribeTransactions v0 for one id."""
    raw = txn_id.encode()
    body = b"\x02" + kw.uvarint(len(raw) + 1) + raw + b"\x00"
    kind, payload = kw.exchange(port, kw.frame(
        kw.header(API_DESCRIBE_TRANSACTIONS, 0, 23, flexible=True) + body))
    assert kind == "response", "the connection closed without an answer"
    r = WireReader(payload)
    assert r.take(">i") == 23
    r.tags()
    r.take(">i")  # throttle
    assert r.uvarint() - 1 == 1
    error = r.take(">h")
    assert r.compact_string() == txn_id
    state = r.compact_string()
    timeout_ms = r.take(">i")
    r.take(">q")  # start time
    pid = r.take(">q")
    epoch = r.take(">h")
    topics = []
    for _ in range(r.uvarint() - 1):
        topic = r.compact_string()
        parts = [r.take(">i") for _ in range(r.uvarint() - 1)]
        r.tags()
        topics.append((topic, parts))
    return error, state, pid, epoch, timeout_ms, topics


class WireReader:
    def __init__(self, data):
        self.data = data
        self.off = 0

    def take(self, fmt):
        (v,) = struct.unpack_from(fmt, self.data, self.off)
        self.off += struct.calcsize(fmt)
        return v

    def uvarint(self):
        shift = value = 0
        while True:
            b = self.data[self.off]
            self.off += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7

    def compact_string(self):
        n = self.uvarint() - 1
        s = self.data[self.off:self.off + n].decode()
        self.off += n
        return s

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.off += self.uvarint()


def test_describe_and_list_transactions(broker, topic):
    """DescribeTransactions and ListTransactions were not served (tools such as
    kafka-transactions.sh could not see a transaction): an open transaction is Ongoing with
    its partition, a committed one CompleteCommit, an unknown id TRANSACTIONAL_ID_NOT_FOUND."""
    create_topic(broker.bootstrap, topic, partitions=2)
    txn_id = "tx-" + topic
    p = txn_producer(broker.bootstrap, txn_id)
    p.begin_transaction()
    p.produce(topic, value=b"x", partition=1)
    p.flush(TIMEOUT_S)
    error, state, pid, epoch, timeout_ms, topics = describe_transactions_v0(broker.port, txn_id)
    assert (error, state, timeout_ms, topics) == (NONE, "Ongoing", 60000, [(topic, [1])])
    error, listed = list_transactions_v0(broker.port)
    assert error == NONE and (txn_id, pid, "Ongoing") in listed
    p.commit_transaction(TIMEOUT_S)

    def completed():
        out = describe_transactions_v0(broker.port, txn_id)
        return out if out[1] == "CompleteCommit" else None
    error, state, pid2, epoch2, _, topics = wait_until(completed, TIMEOUT_S, "CompleteCommit")
    assert (error, pid2, epoch2, topics) == (NONE, pid, epoch, [])
    assert describe_transactions_v0(broker.port, "nobody")[0] == TRANSACTIONAL_ID_NOT_FOUND


def test_timed_out_transaction_is_aborted_and_producer_fenced(make_broker, topic):
    """transaction.timeout.ms was not enforced: a transaction left open kept its partitions
    unstable forever. The coordinator aborts it with the epoch bumped (Kafka's way), so the
    producer's commit fails fenced, and the id's state is CompleteAbort."""
    b = make_broker(["--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=100"])
    b.start()
    create_topic(b.bootstrap, topic)
    txn_id = "tx-" + topic
    p = txn_producer(b.bootstrap, txn_id, **{"transaction.timeout.ms": 1000,
                                              "message.timeout.ms": 1000})
    p.begin_transaction()
    p.produce(topic, value=b"late")
    p.flush(TIMEOUT_S)
    _, _, pid, epoch, _, _ = describe_transactions_v0(b.port, txn_id)

    def aborted():
        out = describe_transactions_v0(b.port, txn_id)
        return out if out[1] == "CompleteAbort" else None
    _, _, pid2, epoch2, _, _ = wait_until(aborted, TIMEOUT_S, "the timed-out transaction aborted")
    assert (pid2, epoch2) == (pid, epoch + 1)
    with pytest.raises(KafkaException):
        p.commit_transaction(TIMEOUT_S)


def test_corrupt_transaction_state_partition_is_not_served(make_broker, topic):
    """__transaction_state is loaded with the group coordinator's loader (coord_load.c): a batch
    that does not check out must fail its partition as a whole and visibly (a log line naming
    the partition and the offset; its ids answer UNKNOWN_SERVER_ERROR), never serve the ids'
    state from before the damage. Guards the loader's transaction side, which no test read."""
    b = make_broker().start()
    create_topic(b.bootstrap, topic)
    txn_id = "tx-" + topic
    p = txn_producer(b.bootstrap, txn_id)
    p.begin_transaction()
    p.produce(topic, value=b"v")
    p.commit_transaction(TIMEOUT_S)
    b.stop()
    segs = [s for s in glob.glob(os.path.join(b.data_dir, "__transaction_state-*", "*.log"))
            if os.path.getsize(s) > 0]
    assert len(segs) == 1, segs  # the one partition of txn_id
    with open(segs[0], "r+b") as f:  # a flipped bit in the last record: its batch's CRC fails
        f.seek(-2, os.SEEK_END)
        byte = f.read(1)
        f.seek(-2, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0x40]))
    b.start()
    error, _, _ = retry(lambda: init_producer_id_v3(b.port, txn_id, 60000), "the load's end")
    assert error == UNKNOWN_SERVER_ERROR
    line = "cannot load transactions from %s: the record at offset" % os.path.basename(
        os.path.dirname(segs[0]))
    assert b.stderr_text().count(line) == 1, b.stderr_text()


# ---- three nodes -----------------------------------------------------------------------------

FAST_ISR = ["--set", "replica.lag.time.max.ms=1000"]


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path, 3, extra_args=FAST_ISR).start()
    yield c
    c.stop()


def test_commit_on_three_nodes(cluster, topic):
    """A transaction over partitions led by all three nodes commits: the coordinator sends
    WriteTxnMarkers to the other nodes over the cluster port (markers were only ever sent to
    the controller's admin path), and __transaction_state is replicated three ways."""
    c = cluster
    create_topic(c.bootstrap(1), topic, partitions=6, replication=3)
    txn_id = "tx-" + topic
    p = txn_producer(c.bootstrap(1), txn_id)
    for round_ in range(3):
        p.begin_transaction()
        for part in range(6):
            p.produce(topic, value=b"r%d-p%d" % (round_, part), partition=part)
        p.commit_transaction(TIMEOUT_S)
    md = c.metadata(1, "__transaction_state")
    parts = md.topics["__transaction_state"].partitions
    assert len(parts) == 50 and all(len(pm.replicas) == 3 for pm in parts.values())

    def completed():
        for n in (1, 2, 3):
            out = describe_transactions_v0(c.nodes[n].port, txn_id)
            if out[0] == NONE:
                return out if out[1] == "CompleteCommit" else None
        return None
    wait_until(completed, TIMEOUT_S, "CompleteCommit on the coordinator")
    values = read_all(c.bootstrap(1), topic, "read_uncommitted", expect_count=18, partitions=6)
    assert sorted(values) == sorted("r%d-p%d" % (r, q) for r in range(3) for q in range(6))


def test_read_committed_sees_committed_not_aborted(broker, topic):
    """End to end with the partition side: records of an aborted transaction are invisible to
    a read_committed consumer and visible to read_uncommitted; committed ones are visible to
    both. Catches a coordinator that writes no markers (read_committed would see nothing) or
    the wrong one (an aborted transaction committed)."""
    create_topic(broker.bootstrap, topic, partitions=2)
    p = txn_producer(broker.bootstrap, "tx-" + topic)
    for txn, commit in (("a", True), ("b", False), ("c", True)):
        p.begin_transaction()
        for part in range(2):
            p.produce(topic, value=("%s%d" % (txn, part)).encode(), partition=part)
        # Delivered first: librdkafka purges what it has not sent when it aborts.
        assert p.flush(TIMEOUT_S) == 0
        if commit:
            p.commit_transaction(TIMEOUT_S)
        else:
            p.abort_transaction(TIMEOUT_S)
    committed = read_all(broker.bootstrap, topic, "read_committed", expect_count=4, partitions=2)
    assert sorted(committed) == ["a0", "a1", "c0", "c1"]
    everything = read_all(broker.bootstrap, topic, "read_uncommitted", expect_count=6,
                          partitions=2)
    assert sorted(everything) == ["a0", "a1", "b0", "b1", "c0", "c1"]


def coordinator_node(c, txn_id):
    """The node FindCoordinator names for a transactional id, asked of any live node."""
    def ask():
        for n, b in c.nodes.items():
            if not b.alive():
                continue
            try:
                error, node, _, _ = find_coordinator_v1(b.port, txn_id)
            except (AssertionError, OSError):
                continue
            if error == NONE and c.nodes[node].alive():
                return node
        return None
    return wait_until(ask, TIMEOUT_S, "the coordinator of %s" % txn_id)


def test_consume_transform_produce_exactly_once_through_kills(tmp_path):
    """Consume-transform-produce with send_offsets_to_transaction on three nodes while the
    transaction coordinator's node and an output partition's leader are killed (kill -9) in
    the middle of transactions: every input record is in the output exactly once as a
    read_committed consumer sees it. Catches lost prepared transactions at coordinator
    fail-over (markers never resumed: LSO stuck, output missing), offsets committed without
    their records or records without their offsets (duplicates or gaps), and zombie commits."""
    c = Cluster(tmp_path, 3, extra_args=FAST_ISR).start()
    try:
        boot = ",".join(c.bootstrap(n) for n in (1, 2, 3))
        create_topic(boot, "in", partitions=3, replication=3)
        create_topic(boot, "out", partitions=3, replication=3)
        inputs = ["in-%d" % i for i in range(300)]
        src = Producer({"bootstrap.servers": boot, "enable.idempotence": True})
        for i, v in enumerate(inputs):
            src.produce("in", value=v.encode(), partition=i % 3)
        assert src.flush(TIMEOUT_S) == 0
        txn_id = "ctp-exactly-once"
        parts = [TopicPartition("in", p) for p in range(3)]
        consumer = Consumer({"bootstrap.servers": boot, "group.id": "ctp",
                             "isolation.level": "read_committed", "enable.auto.commit": False,
                             "auto.offset.reset": "earliest"})

        def rewind():
            """Back to the group's committed offsets (what the last committed transaction
            stored), as a restarted application would start."""
            committed = consumer.committed(parts, TIMEOUT_S)
            consumer.assign([TopicPartition("in", tp.partition, max(tp.offset, 0))
                             for tp in committed])

        producer = txn_producer(boot, txn_id, **{"transaction.timeout.ms": 30000,
                                                 "message.timeout.ms": 30000})
        rewind()
        done = 0
        killed = []
        plan = {3: "coordinator", 8: "leader"}  # iteration -> what to kill mid-transaction
        iteration = 0
        deadline = time.monotonic() + 240
        while done < len(inputs):
            assert time.monotonic() < deadline, "only %d of %d inputs done" % (done, len(inputs))
            msgs = consumer.consume(20, 1.0)
            msgs = [m for m in msgs if m.error() is None]
            if not msgs:
                continue
            iteration += 1
            try:
                producer.begin_transaction()
                for m in msgs:
                    producer.produce("out", value=b"out-" + m.value(), partition=m.partition())
                what = plan.pop(iteration, None)
                if what is not None:
                    victim = coordinator_node(c, txn_id) if what == "coordinator" else \
                        c.metadata(next(n for n in (1, 2, 3) if c.nodes[n].alive()),
                                   "out").topics["out"].partitions[0].leader
                    c.nodes[victim].kill()
                    killed.append(victim)
                producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                     consumer.consumer_group_metadata(),
                                                     TIMEOUT_S)
                producer.commit_transaction(TIMEOUT_S)
                done += len(msgs)
            except KafkaException as e:
                err = e.args[0]
                if not err.fatal():
                    try:
                        producer.abort_transaction(TIMEOUT_S)
                    except KafkaException:
                        err = None
                if err is None or err.fatal():
                    # A new producer of the same id fences the old one and aborts its
                    # transaction (the coordinator's InitProducerId rule).
                    producer = txn_producer(boot, txn_id, **{"transaction.timeout.ms": 30000,
                                                             "message.timeout.ms": 30000})
                rewind()
                done = sum(max(tp.offset, 0) for tp in consumer.committed(parts, TIMEOUT_S))
            # A killed node comes back once a transaction got through without it.
            while killed and done > 0:
                n = killed.pop()
                c.nodes[n].start()
        assert not plan, "the kills planned did not all happen: %r" % plan
        for n in killed:
            c.nodes[n].start()
        out = read_all(boot, "out", "read_committed", expect_count=len(inputs), partitions=3)
        dups = sorted({v for v in out if out.count(v) > 1})
        assert not dups, "duplicated in the output: %r" % dups[:10]
        assert sorted(out) == sorted("out-" + v for v in inputs)
    finally:
        c.stop()
