"""Numbered regression tests, one per broker bug the integration suite found.

Each test names the bug, how it showed, and reproduces it with the smallest sequence of real
requests. Some bugs are memory errors that a release build may survive silently: they fail for
certain against the ASan build (CHRONIK_BIN=build/asan/chronik), where the broker aborts.
"""

import os
import socket
import struct
import subprocess
import time

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import CHRONIK_BIN, REPO_DIR, free_ports
import helpers
import rdkafka_admin
from kafka_wire import (exchange, fetch_v4, frame, list_offsets_v1, list_offsets_v1_answer,
                        produce_v3, receive, record_batch, send)

TIMEOUT_S = 30
# Requests librdkafka 2.0.2 sends with bytes after their body (tests/unit/proto).
TRAILING_DIR = os.path.join(REPO_DIR, "tests", "golden", "trailing", "librdkafka")
# The LD_PRELOAD shim that fails one pread (tests/integration/pread_fault.c; ctest sets it).
PREAD_FAULT_LIB = os.environ.get("PREAD_FAULT_LIB", os.path.join(
    REPO_DIR, "build", "release", "tests", "integration", "libpread_fault.so"))


def serves(broker):
    """A real client still gets metadata and can produce to a fresh topic."""
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    p.produce("serves-%d" % time.monotonic_ns(), value=b"x", partition=0)
    assert p.flush(TIMEOUT_S) == 0
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=TIMEOUT_S)
    assert md.brokers


def test_0001_delete_topic_while_fetch_waits(broker, topic):
    # Bug 1: DeleteTopics freed a partition's replica while a long-polling Fetch still watched
    # it; when the fetch's wait timer fired, fetch_finish -> replica_watch_remove wrote into the
    # freed replica (heap-use-after-free under ASan, found by test_kcat's delete after reads).
    # Fixed in 62e3e33 (closing replicas answer their watchers); this test fails on 8d48c52.
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=TIMEOUT_S)
    waiting = [send(broker.port, fetch_v4(i, topic, 0, 0, 1500)) for i in range(3)]
    try:
        time.sleep(0.2)  # the fetches are parked, waiting for data at offset 0
        a.delete_topics([topic], operation_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)
        for s in waiting:
            outcome, _ = receive(s)  # an answer (an error for the partition) or a close
            assert outcome in ("response", "closed")
    finally:
        for s in waiting:
            s.close()
    time.sleep(0.2)
    assert broker.alive(), "the broker died: %s" % broker.stderr_text()
    serves(broker)


def test_0002_port_in_use_exits_with_status_2(tmp_path):
    # Bug 2: when the Kafka port was taken, broker_open's cleanup (broker_close) stopped the
    # retention timer before loop_timer_init had run on it; its zeroed heap_index tripped the
    # ASSERT in the epoll loop's timer heap (loop_epoll.c:134) and the process died of SIGABRT
    # instead of exiting with status 2 ("cannot start") after its message. Fixed in 5f54cf9.
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http_port, cluster_port = free_ports(2)
        proc = subprocess.run(
            [CHRONIK_BIN, "--port", str(port), "--data-dir", str(tmp_path / "data"),
             "--set", "http.port=%d" % http_port, "--set", "cluster.port=%d" % cluster_port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_S)
    finally:
        taken.close()
    err = proc.stderr.decode("utf-8", "replace")
    assert "127.0.0.1:%d" % port in err and "in use" in err, err
    assert "assertion failed" not in err, err
    assert proc.returncode == 2, "exit status %d; stderr: %s" % (proc.returncode, err)
    assert proc.stdout == b"", "printed a start-up line without serving"


def test_0003_list_offsets_by_timestamp_answers_the_record(broker, topic):
    # Bug 3: ListOffsets by timestamp answered the base offset of the first batch whose max
    # timestamp reached the target, and echoed the requested timestamp, where Kafka answers the
    # first record at or after the target with that record's own timestamp (every client's
    # offsets_for_times test failed). Fixed in ea2099c.
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=TIMEOUT_S)
    batch = record_batch([b"r%d" % i for i in range(5)], ts_step_ms=1000)
    outcome, _ = exchange(broker.port, produce_v3(1, topic, batch))
    assert outcome == "response"
    base = helpers.TS_BASE_MS
    for target, want in [(base, (0, base, 0)), (base + 2500, (0, base + 3000, 3)),
                         (base + 4000, (0, base + 4000, 4)), (base + 4001, (0, -1, -1))]:
        outcome, payload = exchange(broker.port, list_offsets_v1(9, topic, 0, target))
        assert outcome == "response"
        assert list_offsets_v1_answer(payload, 9) == want, "target %d" % target


def test_0004_produce_to_internal_topic_is_refused(broker, topic):
    # Bug 4: a client could produce to __consumer_offsets, whose records the group coordinator
    # reads back as group state at start-up; Kafka refuses such appends with
    # INVALID_TOPIC_EXCEPTION ("Cannot append to internal topic").
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic})
    c.subscribe([topic])  # makes the client find a coordinator: __consumer_offsets exists
    deadline = time.monotonic() + TIMEOUT_S
    md = AdminClient({"bootstrap.servers": broker.bootstrap})
    while "__consumer_offsets" not in md.list_topics(timeout=TIMEOUT_S).topics:
        c.poll(0.2)
        assert time.monotonic() < deadline
    c.close()
    errors = []
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "retries": 0})
    p.produce("__consumer_offsets", value=b"junk", partition=0,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT_S)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == ck.KafkaError.TOPIC_EXCEPTION, errors[0]
    serves(broker)


def _trailing_frame(name):
    with open(os.path.join(TRAILING_DIR, name), "rb") as f:
        return f.read()


def _committed_group(broker, topic, partitions=1):
    """A topic and a group with offset 7 committed for its partition 0 by a real consumer."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=TIMEOUT_S)
    group = "g-" + topic
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        c.commit(offsets=[ck.TopicPartition(topic, 0, 7)], asynchronous=False)
    finally:
        c.close()
    return group


def test_0040_librdkafka_list_consumer_groups(broker, topic):
    # Bug 40 (issue 8 item 11): librdkafka 2.0.2 (Debian 12's) sends ListGroups v4 with its
    # body's tag byte written twice. The broker closed the connection over the byte left after
    # the body, where Kafka ignores it, so rd_kafka_ListConsumerGroups failed with
    # _TRANSPORT for every application on that client.
    group = _committed_group(broker, topic)
    ids, errors = rdkafka_admin.list_consumer_groups(broker.bootstrap, TIMEOUT_S)
    assert errors == []
    assert group in ids
    # The captured frame itself (tests/golden/trailing), whatever librdkafka is installed.
    outcome, payload = exchange(broker.port, frame(_trailing_frame("list_groups_v4.bin")))
    assert outcome == "response"
    assert struct.unpack(">i", payload[:4])[0] == 3  # the frame's correlation id
    serves(broker)


def test_0041_librdkafka_list_consumer_group_offsets(broker, topic):
    # Bug 41 (issue 8 item 11): librdkafka 2.0.2 asks for all of a group's offsets with an
    # OffsetFetch v7 whose null topic array is followed by three bytes of a count placeholder;
    # the broker closed the connection instead of answering as Kafka does, so
    # rd_kafka_ListConsumerGroupOffsets failed with _TRANSPORT.
    group = _committed_group(broker, topic)
    err, offsets = rdkafka_admin.list_consumer_group_offsets(broker.bootstrap, group,
                                                             timeout_s=TIMEOUT_S)
    assert err == "NO_ERROR"
    assert offsets == {(topic, 0): (7, "NO_ERROR")}
    outcome, payload = exchange(broker.port, frame(_trailing_frame("offset_fetch_v7.bin")))
    assert outcome == "response"
    assert struct.unpack(">i", payload[:4])[0] == 4
    serves(broker)


def test_0042_commit_to_unknown_topic_fails(broker, topic):
    # Bug 42 (issue 8 item 10): OffsetCommit for a topic that does not exist answered NONE and
    # stored the offset; Kafka answers UNKNOWN_TOPIC_OR_PARTITION per partition and stores
    # nothing (librdkafka test 0030 do_nonexist_commit).
    group = "g-" + topic
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        with pytest.raises(ck.KafkaException) as e:
            c.commit(offsets=[ck.TopicPartition(topic, 0, 5)], asynchronous=False)
        assert e.value.args[0].code() == ck.KafkaError.UNKNOWN_TOPIC_OR_PART
    finally:
        c.close()
    err, offsets = rdkafka_admin.list_consumer_group_offsets(broker.bootstrap, group,
                                                             timeout_s=TIMEOUT_S)
    assert (err, offsets) == ("NO_ERROR", {})


def test_0043_alter_group_offsets_of_unknown_partitions_fails(broker, topic):
    # Bug 43 (issue 8 item 10): AlterConsumerGroupOffsets (an OffsetCommit outside any
    # generation) accepted a topic that does not exist and partitions beyond a topic's count;
    # Kafka answers UNKNOWN_TOPIC_OR_PARTITION for each of those and commits the rest
    # (librdkafka test 0081).
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=TIMEOUT_S)
    group = "g-" + topic
    missing = topic + "-missing"
    err, parts = rdkafka_admin.alter_consumer_group_offsets(
        broker.bootstrap, group, [(topic, 1, 4), (topic, 2, 4), (missing, 0, 3)], TIMEOUT_S)
    assert err == "NO_ERROR"
    assert parts == {(topic, 1): (4, "NO_ERROR"), (topic, 2): (4, "UNKNOWN_TOPIC_OR_PART"),
                     (missing, 0): (3, "UNKNOWN_TOPIC_OR_PART")}
    err, offsets = rdkafka_admin.list_consumer_group_offsets(broker.bootstrap, group,
                                                             timeout_s=TIMEOUT_S)
    assert (err, offsets) == ("NO_ERROR", {(topic, 1): (4, "NO_ERROR")})


def _offsets_partition(group, partitions=50):
    """Kafka's __consumer_offsets partition of a group: abs(String.hashCode) mod partitions."""
    h = 0
    for ch in group.encode():
        h = (h * 31 + ch) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


def test_0044_corrupt_offsets_partition_is_not_served_partially(make_broker, topic):
    # Bug 44 (issue 8 item 7): the group loader stopped at the first __consumer_offsets batch it
    # could not parse and marked the partition loaded, so after a restart the group silently
    # resumed from the offsets before that batch (here 7 instead of 9). Now the partition fails
    # as a whole, visibly: one log line names it and the offset, its groups answer an error,
    # and groups of other partitions are served.
    broker = make_broker().start()
    group = _committed_group(broker, topic)  # offset 7 for partition 0 of the topic
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    c.commit(offsets=[ck.TopicPartition(topic, 0, 9)], asynchronous=False)
    c.close()
    other = "o-" + topic
    while _offsets_partition(other) == _offsets_partition(group):
        other += "x"
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": other})
    c.commit(offsets=[ck.TopicPartition(topic, 0, 3)], asynchronous=False)
    c.close()
    broker.stop()
    p = _offsets_partition(group)
    seg = os.path.join(broker.data_dir, "__consumer_offsets-%d" % p, "%020d.log" % 0)
    with open(seg, "r+b") as f:  # a flipped bit in the last record: its batch's CRC fails
        f.seek(-2, os.SEEK_END)
        b = f.read(1)
        f.seek(-2, os.SEEK_END)
        f.write(bytes([b[0] ^ 0x40]))
    broker.start()

    def committed(g):
        c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": g})
        try:
            return c.committed([ck.TopicPartition(topic, 0)], timeout=10)[0].offset
        finally:
            c.close()

    assert committed(other) == 3
    with pytest.raises(ck.KafkaException) as e:
        committed(group)  # never 7, the offset before the corrupt batch, nor a reset
    assert e.value.args[0].code() == ck.KafkaError.UNKNOWN, e.value
    err = broker.stderr_text()
    assert "__consumer_offsets-%d" % p in err and "offset 1" in err, err
    serves(broker)


def test_0045_read_error_while_loading_offsets_is_retried(make_broker, topic, tmp_path,
                                                         monkeypatch):
    # Bug 45 (issue 8 item 7): a read error while loading __consumer_offsets ended the load as
    # if it had completed, and the group was served with no offsets at all (consumers reset).
    # Now the partition keeps answering COORDINATOR_LOAD_IN_PROGRESS, the error is logged once
    # with partition and offset, and the read is retried until the group is served whole.
    # The read error is injected by tests/integration/pread_fault.c on the loader's read.
    assert os.path.exists(PREAD_FAULT_LIB), PREAD_FAULT_LIB
    broker = make_broker().start()
    group = _committed_group(broker, topic)
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    c.commit(offsets=[ck.TopicPartition(topic, 0, 9)], asynchronous=False)
    c.close()
    broker.stop()
    p = _offsets_partition(group)
    seg = os.path.join("__consumer_offsets-%d" % p, "%020d.log" % 0)
    size = os.path.getsize(os.path.join(broker.data_dir, seg))

    def committed():
        c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
        try:
            return c.committed([ck.TopicPartition(topic, 0)], timeout=TIMEOUT_S)[0].offset
        finally:
            c.close()

    # A first start counts the segment's reads: the loader's is the last of the whole file.
    trace = str(tmp_path / "preads")
    monkeypatch.setenv("LD_PRELOAD", PREAD_FAULT_LIB)
    monkeypatch.setenv("PREAD_FAULT_PATH", seg)
    monkeypatch.setenv("PREAD_FAULT_TRACE", trace)
    broker.start()
    assert committed() == 9
    broker.stop()
    with open(trace) as f:
        reads = [tuple(int(x) for x in line.split()) for line in f]
    loads = [n for n, count, offset in reads if count == size and offset == 0]
    assert loads, reads
    monkeypatch.delenv("PREAD_FAULT_TRACE")
    monkeypatch.setenv("PREAD_FAULT_FAIL", str(loads[-1]))
    broker.start()
    assert committed() == 9  # not -1001 (no offset): the failed read was retried
    err = broker.stderr_text()
    line = "cannot load groups from __consumer_offsets-%d at offset 0: read failed" % p
    assert err.count(line) == 1, err
    serves(broker)
