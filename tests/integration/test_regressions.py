"""Numbered regression tests, one per broker bug the integration suite found.

Each test names the bug, how it showed, and reproduces it with the smallest sequence of real
requests. Some bugs are memory errors that a release build may survive silently: they fail for
certain against the ASan build (CHRONIK_BIN=build/asan/chronik), where the broker aborts.
"""

import os
import socket
import subprocess
import time

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import CHRONIK_BIN, free_ports
import helpers
from kafka_wire import (exchange, fetch_v4, list_offsets_v1, list_offsets_v1_answer, produce_v3,
                        receive, record_batch, send)

TIMEOUT_S = 30


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


def _batch_positions(path):
    """(position, length) of every batch in a segment file, up to the first zero length."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos + 8:pos + 12], "big")
        if length == 0:
            break
        out.append((pos, 12 + length))
        pos += 12 + length
    return out


def test_0030_midlog_corruption_takes_only_its_partition_offline(make_broker, topic):
    # Issue 8 item 8: after an unclean stop, recovery truncated a partition at its first invalid
    # batch and deleted everything after it, so one damaged byte silently dropped fsynced,
    # acknowledged records behind it. Now that log refuses to open, naming the file and offset,
    # changes nothing on disk, and only its partition goes offline: the others keep serving.
    b = make_broker().start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=TIMEOUT_S)
    p = ck.Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(8):  # separate batches in each partition
        for part in (0, 1):
            p.produce(topic, value=b"v%d-%d" % (part, i) * 50, partition=part)
        assert p.flush(TIMEOUT_S) == 0
    b.kill()  # unclean: the next start scans the logs
    seg = os.path.join(b.data_dir, "%s-0" % topic, "%020d.log" % 0)
    batches = _batch_positions(seg)
    assert len(batches) >= 8, batches
    pos, length = batches[3]
    with open(seg, "r+b") as f:
        f.seek(pos + length - 3)
        byte = f.read(1)
        f.seek(pos + length - 3)
        f.write(bytes([byte[0] ^ 0x5A]))
    with open(seg, "rb") as f:
        damaged = f.read()

    b.start()
    err = b.stderr_text()
    lines = [line for line in err.splitlines() if "is damaged" in line]
    assert len(lines) == 1 and seg in lines[0] and "offset 3" in lines[0], err
    with open(seg, "rb") as f:
        assert f.read() == damaged, "recovery changed the damaged partition's file"
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(topic, timeout=TIMEOUT_S)
    parts = md.topics[topic].partitions
    assert parts[0].error is not None and parts[0].leader == -1, parts[0]
    assert parts[1].error is None and parts[1].leader >= 0, parts[1]
    # Partition 1 serves everything it acknowledged, and takes more.
    p = ck.Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    p.produce(topic, value=b"after", partition=1)
    assert p.flush(TIMEOUT_S) == 0
    c = ck.Consumer({"bootstrap.servers": b.bootstrap, "group.id": topic,
                     "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, 1, 0)])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < 9 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert got == [b"v1-%d" % i * 50 for i in range(8)] + [b"after"]
    assert b.alive()
    serves(b)
