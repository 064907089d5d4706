"""Transactions, the coordinator side (issue 11): FindCoordinator for transactional ids,
InitProducerId with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, the
markers it sends, DescribeTransactions and ListTransactions, transaction timeouts, with
confluent-kafka's transactional producer (librdkafka) on a single node and on a three-node
cluster.

Each test names the bug it catches. Faults are real: kill -9 of a leader.
"""

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
API_END_TXN = 26
API_DESCRIBE_TRANSACTIONS = 65
API_LIST_TRANSACTIONS = 66
NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
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
    # KIP-360: an old epoch is fenced.
    error, _, _ = init_producer_id_v3(broker.port, "raw-a", 10000, pid, 0)
    assert error == PRODUCER_FENCED
    error, _, _ = init_producer_id_v3(broker.port, "raw-b", 900001)
    assert error == INVALID_TRANSACTION_TIMEOUT
    # EndTxn with no transaction going on.
    assert end_txn_v1(broker.port, "raw-a", pid, 1, True) == INVALID_TXN_STATE
