"""Numbered regression tests, one per broker bug the integration suite found.

Each test names the bug, how it showed, and reproduces it with the smallest sequence of real
requests. Some bugs are memory errors that a release build may survive silently: they fail for
certain against the ASan build (CHRONIK_BIN=build/asan/chronik), where the broker aborts.
"""

import os
import select
import shutil
import socket
import struct
import subprocess
import time

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import CHRONIK_BIN, free_ports
import helpers
from kafka_wire import (API_API_VERSIONS, API_PRODUCE, exchange, fetch_v4, frame, header, i16,
                        i32, list_offsets_v1, list_offsets_v1_answer, produce_v3, receive,
                        record_batch, send, string)

TIMEOUT_S = 30
NOT_LEADER_OR_FOLLOWER = 6
KAFKA_STORAGE_ERROR = 56


def serves(broker):
    """A real client still gets metadata and can produce to a fresh topic."""
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    p.produce("serves-%d" % time.monotonic_ns(), value=b"x", partition=0)
    assert p.flush(TIMEOUT_S) == 0
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=TIMEOUT_S)
    assert md.brokers


def broker_unread_bytes(broker_port, client_port):
    """Bytes the broker has not read yet on its end of a loopback connection (the rx_queue of its
    socket in /proc/net/tcp), or None when there is no such socket."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if (int(local.split(":")[1], 16) == broker_port and
                    int(remote.split(":")[1], 16) == client_port):
                return int(queues.split(":")[1], 16)
    return None


def wait_parked(broker, socks):
    """Returns once every request sent on socks is parked in the broker: the broker has read all
    of it (its end of the connection holds no unread byte), then answered a later request on
    another connection (the loop is single-threaded, so any immediate answer to the earlier
    ones has been written by then), and still no answer has reached socks."""
    deadline = time.monotonic() + TIMEOUT_S
    for s in socks:
        port = s.getsockname()[1]
        while broker_unread_bytes(broker.port, port) != 0:
            assert time.monotonic() < deadline, "the broker did not read the request"
            time.sleep(0.005)  # polls the observed state
    outcome, _ = exchange(broker.port, frame(header(API_API_VERSIONS, 0, 7)))
    assert outcome == "response"
    readable, _, _ = select.select(socks, [], [], 0)
    assert not readable, "a fetch was answered at once instead of waiting for data"


def test_0001_delete_topic_while_fetch_waits(broker, topic):
    # Bug 1: DeleteTopics freed a partition's replica while a long-polling Fetch still watched
    # it; when the fetch's wait timer fired, fetch_finish -> replica_watch_remove wrote into the
    # freed replica (heap-use-after-free under ASan, found by test_kcat's delete after reads).
    # Fixed in 62e3e33 (closing replicas answer their watchers); this test fails on 8d48c52.
    # Issue 8 item 17: it used to sleep and assume the fetches were parked; it now observes it
    # (wait_parked), and observes that their wait timers are past before checking the broker.
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    barrier_topic = topic + "-barrier"
    for t in (topic, barrier_topic):
        a.create_topics([NewTopic(t, 1, 1)])[t].result(timeout=TIMEOUT_S)
    waiting = [send(broker.port, fetch_v4(i, topic, 0, 0, 1500)) for i in range(3)]
    # Sent after them with the same wait on an empty partition: timers fire in deadline order,
    # so once it is answered, the parked fetches' timers are due too.
    barrier = None
    try:
        wait_parked(broker, waiting)
        barrier = send(broker.port, fetch_v4(9, barrier_topic, 0, 0, 1500))
        a.delete_topics([topic], operation_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)
        for s in waiting:
            outcome, _ = receive(s)  # an answer (an error for the partition) or a close
            assert outcome in ("response", "closed")
        outcome, _ = receive(barrier)
        assert outcome == "response"
    finally:
        for s in waiting + ([barrier] if barrier else []):
            s.close()
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


def produce_errors(port, topic, partitions):
    """Produce v3 of one batch to each of partitions of topic on one connection; {partition:
    error_code} from the response."""
    batch = record_batch([b"probe"])
    parts = b"".join(i32(p) + i32(len(batch)) + batch for p in partitions)
    body = (string(None) + i16(-1) + i32(TIMEOUT_S * 1000) + i32(1) + string(topic) +
            i32(len(partitions)) + parts)
    outcome, payload = exchange(port, frame(header(API_PRODUCE, 3, 5) + body))
    assert outcome == "response"
    off = 4 + 4  # correlation id, topic count 1
    off += 2 + struct.unpack(">h", payload[off:off + 2])[0]
    count = struct.unpack(">i", payload[off:off + 4])[0]
    off += 4
    errors = {}
    for _ in range(count):
        p, err = struct.unpack(">ih", payload[off:off + 6])
        errors[p] = err
        off += 6 + 8 + 8
    return errors


# A clean shutdown closes the logs one by one, a few fsyncs each (about 40 ms a partition on a
# busy disk), so the clean case uses fewer partitions and a longer stop.
MANY_PARTITIONS = {"clean": 1000, "kill": 2000}
MANY_STOP_TIMEOUT_S = 300


@pytest.mark.parametrize("stop", ["clean", "kill"])
def test_0060_restart_with_many_partitions_serves_every_partition(make_broker, topic, stop):
    # Issue 8 item 19: a restart opened every partition log before listening (3.1 s for 10,000
    # partitions); the logs now open in the background, and a partition shows no leader in
    # Metadata and answers NOT_LEADER_OR_FOLLOWER (both retriable) until its log is open and
    # recovered. Every partition must serve produce and fetch correctly after the restart, also
    # after kill -9 (recovery off the loop). Small segments keep the preallocated active
    # segments small.
    count = MANY_PARTITIONS[stop]
    b = make_broker(["--set", "log.segment.bytes=65536"]).start()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic, count, 1)])[topic].result(timeout=120)
    conf = {"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": 120000}
    p = ck.Producer(conf)
    for part in range(count):
        p.produce(topic, value=b"before-%d" % part, partition=part)
    assert p.flush(120) == 0
    if stop == "clean":
        b.stop(timeout_s=MANY_STOP_TIMEOUT_S)
    else:
        b.kill()
    b.start()
    failed = []
    p = ck.Producer(conf)
    for part in range(count):
        p.produce(topic, value=b"after-%d" % part, partition=part,
                  on_delivery=lambda err, msg: err and failed.append((msg.partition(), err)))
    assert p.flush(120) == 0
    assert not failed, failed[:5]
    c = ck.Consumer({"bootstrap.servers": b.bootstrap, "group.id": topic,
                     "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, part, 0) for part in range(count)])
    got = {}
    deadline = time.monotonic() + 120
    while sum(len(v) for v in got.values()) < 2 * count:
        assert time.monotonic() < deadline, "read %d of %d records" % (
            sum(len(v) for v in got.values()), 2 * count)
        msg = c.poll(1.0)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.setdefault(msg.partition(), []).append((msg.offset(), msg.value()))
    c.close()
    for part in range(count):
        assert got[part] == [(0, b"before-%d" % part), (1, b"after-%d" % part)], part
    b.kill()  # a clean stop would only take long; the restart was the point


def test_0061_partition_that_cannot_open_fails_alone(make_broker, topic):
    # Issue 8 item 19: with partitions opened in the background, a log that cannot open (here
    # its directory is replaced by a file; mid-log corruption is refused the same way) must
    # fail that partition only: it answers KAFKA_STORAGE_ERROR and the others serve. Before,
    # one partition that failed to open kept the whole broker from starting (exit status 2).
    b = make_broker().start()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic, 4, 1)])[topic].result(timeout=TIMEOUT_S)
    assert produce_errors(b.port, topic, [0, 1, 2, 3]) == {0: 0, 1: 0, 2: 0, 3: 0}
    b.stop()
    broken = os.path.join(b.data_dir, "%s-2" % topic)
    shutil.rmtree(broken)
    with open(broken, "wb") as f:
        f.write(b"not a directory")
    b.start()
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        errors = produce_errors(b.port, topic, [0, 1, 2, 3])
        if errors[2] != NOT_LEADER_OR_FOLLOWER:  # still opening
            break
        assert time.monotonic() < deadline, "partition 2 never finished opening"
        time.sleep(0.01)  # polls the observed state
    assert errors == {0: 0, 1: 0, 2: KAFKA_STORAGE_ERROR, 3: 0}
    assert "cannot open partition" in b.stderr_text()
    serves(b)
    b.stop()
