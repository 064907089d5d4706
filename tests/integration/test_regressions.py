"""Numbered regression tests, one per broker bug the integration suite found.

Each test names the bug, how it showed, and reproduces it with the smallest sequence of real
requests. Some bugs are memory errors that a release build may survive silently: they fail for
certain against the ASan build (CHRONIK_BIN=build/asan/chronik), where the broker aborts.
"""

import gzip
import os
import select
import shutil
import socket
import struct
import subprocess
import time

import confluent_kafka as ck
import lz4.frame
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from conftest import CHRONIK_BIN, REPO_DIR, free_ports
import helpers
import kafka_schema_wire
from kafka_wire import (API_API_VERSIONS, API_FETCH, API_PRODUCE, batch_of, exchange, fetch_v4,
                        fetch_v4_batches, frame, header, i16, i32, i64, list_offsets_v1,
                        list_offsets_v1_answer, produce_v3, produce_v3_answer, receive,
                        record_batch, records_section, send, string)
from test_confluent_kafka import produce as ck_produce, read as ck_read
from test_kafka_python import read as kp_read
import rdkafka_admin

TIMEOUT_S = 30
MIB = 1024 * 1024
KAFKA_UNKNOWN_SERVER_ERROR = -1
NOT_LEADER_OR_FOLLOWER = 6
KAFKA_STORAGE_ERROR = 56
PARKED_FETCHES = 24
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


def vm_kib(broker, field):
    with open("/proc/%d/status" % broker.pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s" % field)


def fetch_v4_partitions(correlation_id, topic, partitions, max_wait_ms):
    """A Fetch v4 of offset 0 of every partition listed (repeats allowed), min_bytes 1."""
    body = (i32(-1) + i32(max_wait_ms) + i32(1) + i32(1 << 20) + b"\x00" + i32(1) + string(topic) +
            i32(len(partitions)) +
            b"".join(i32(p) + i64(0) + i32(1 << 20) for p in partitions))
    return frame(header(API_FETCH, 4, correlation_id) + body)


def test_0010_large_fetch_does_not_abort_the_broker(broker, topic):
    # Issue 8 item 2: a Fetch v4 with 600,000 partitions (9.6 MB, under socket.request.max.bytes)
    # ended the broker with "src/broker/fetch.c:43: assertion failed: p != NULL": the handler
    # treated exhaustion of the request's arena as impossible. A request over its memory budget
    # now gets Kafka's error in the top-level error code where the version has one (Fetch v7+),
    # else a closed connection, and one log line; the broker keeps serving.
    serves(broker)
    big = [0] * 600000
    outcome, _ = exchange(broker.port, fetch_v4_partitions(5, topic, big, 0))
    assert outcome == "closed"
    assert broker.alive(), "the broker died: %s" % broker.stderr_text()
    assert "Fetch v4 request 5 from client 'chronik-it' needs more than" in broker.stderr_text()
    part = {"Partition": 0, "PartitionMaxBytes": 1 << 20}
    v11 = kafka_schema_wire.request("FetchRequest", API_FETCH, 11, 6, {
        "ReplicaId": -1, "MaxBytes": 1 << 20, "SessionEpoch": -1,
        "Topics": [{"Topic": topic, "Partitions": kafka_schema_wire.Repeat(600000, part)}]})
    outcome, payload = exchange(broker.port, v11)
    assert outcome == "response"
    correlation_id, _throttle, error_code = struct.unpack(">iih", payload[:10])
    assert (correlation_id, error_code) == (6, KAFKA_UNKNOWN_SERVER_ERROR)
    serves(broker)


def test_0011_parked_fetches_are_bounded_by_queued_max_request_bytes(make_broker, topic):
    # Issue 8 item 2: memory held by requests had no broker-wide bound, so many clients parking
    # large fetches could exhaust memory. With queued.max.request.bytes the listener stops
    # reading new requests while requests hold that much (each of these fetches holds ~10 MB
    # while it waits), answers the waiting fetches early, and reads again as they are answered:
    # every fetch is served, in waves, and the broker's peak memory stays near the bound instead
    # of growing with the clients.
    bound = 16 * MIB
    broker = make_broker(["--set", "socket.request.max.bytes=%d" % MIB,
                          "--set", "queued.max.request.bytes=%d" % bound]).start()
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, 100, 1)])[topic].result(timeout=TIMEOUT_S)
    serves(broker)
    # They would wait two minutes for data; at the bound the broker answers waiting fetches
    # early instead, so reading is never held up by requests that only wait.
    request = fetch_v4_partitions(1, topic, [i % 100 for i in range(30000)], 120000)
    assert len(request) < MIB
    rss_before = vm_kib(broker, "VmRSS")
    clients = [send(broker.port, request) for _ in range(PARKED_FETCHES)]
    try:
        for s in clients:
            s.settimeout(60)
            outcome, payload = receive(s)
            assert outcome == "response"
            assert struct.unpack(">i", payload[:4])[0] == 1
    finally:
        for s in clients:
            s.close()
    growth_kib = vm_kib(broker, "VmHWM") - rss_before
    print("%d parked fetches: peak RSS growth %d KiB" % (PARKED_FETCHES, growth_kib))
    # The bound, one request that started below it, and the responses being written; without
    # the bound all of them park at once (~190 MB here).
    assert growth_kib <= (bound + 48 * MIB) // 1024, growth_kib
    assert broker.alive()
    serves(broker)


# ---- issue 8 item 3: topic creation batched and bounded ------------------------------------

API_METADATA = 3
AUTO_CREATE_PER_REQUEST_MAX = 64  # BROKER_AUTO_CREATE_PER_REQUEST_MAX in src/base/limits.h
ERR_LEADER_NOT_AVAILABLE = 5
THROTTLING_QUOTA_EXCEEDED = 89


def metadata_v1(correlation_id, names):
    body = i32(len(names)) + b"".join(string(n) for n in names)
    return frame(header(API_METADATA, 1, correlation_id) + body)


def metadata_v1_topic_errors(payload):
    """The (error code, name) of every topic in a Metadata v1 response."""
    r = Reader(payload)
    r.i32()  # correlation id
    for _ in range(r.i32()):  # brokers: node id, host, port, rack
        r.i32(), r.string(), r.i32(), r.string()
    r.i32()  # controller id
    out = []
    for _ in range(r.i32()):
        err, name, _internal = r.i16(), r.string(), r.u8()
        for _ in range(r.i32()):  # partitions
            r.i16(), r.i32(), r.i32()
            for _ in range(2):  # replicas, isr
                for _ in range(r.i32()):
                    r.i32()
        out.append((err, name))
    return out


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def i16(self):
        return self.take(">h")

    def i32(self):
        return self.take(">i")

    def u8(self):
        return self.take(">B")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s


def test_0020_metadata_naming_100000_unknown_topics_is_bounded(broker):
    # Issue 8 item 3: a Metadata v1 naming 600,000 unknown topics made the loop thread create
    # them one by one, rewriting the whole metadata image after each (12,981 topics after
    # 30 s, no other client answered, SIGTERM ignored). Now a request creates at most
    # AUTO_CREATE_PER_REQUEST_MAX topics with one metadata write and answers the rest
    # LEADER_NOT_AVAILABLE (retriable), while other clients keep being served.
    names = ["flood-%06d" % i for i in range(100_000)]
    s = send(broker.port, metadata_v1(7, names))
    other = AdminClient({"bootstrap.servers": broker.bootstrap})
    try:
        start = time.monotonic()
        outcome, payload = receive(s)
        elapsed = time.monotonic() - start
    finally:
        s.close()
    assert outcome == "response"
    assert elapsed < 10, "the answer took %.1f s" % elapsed
    errors = metadata_v1_topic_errors(payload)
    assert len(errors) == len(names)
    created = [n for e, n in errors if e == 0]
    assert 0 < len(created) <= AUTO_CREATE_PER_REQUEST_MAX
    assert all(e in (0, ERR_LEADER_NOT_AVAILABLE) for e, _ in errors)
    listed = other.list_topics(timeout=TIMEOUT_S).topics
    assert len([t for t in listed if t.startswith("flood-")]) == len(created)
    serves(broker)


def test_0021_sigterm_during_a_metadata_flood_stops_cleanly(make_broker):
    # Issue 8 item 3, second half: with the flood in progress the broker did not handle
    # SIGTERM for minutes. The flood is sent on several connections at once, then SIGTERM:
    # broker.stop() asserts exit status 0 within its timeout.
    broker = make_broker().start()
    names = ["term-%06d" % i for i in range(100_000)]
    request = metadata_v1(8, names)
    socks = [send(broker.port, request) for _ in range(4)]
    try:
        other = AdminClient({"bootstrap.servers": broker.bootstrap})
        start = time.monotonic()
        assert other.list_topics(timeout=TIMEOUT_S).brokers
        assert time.monotonic() - start < 10, "another client waited behind the flood"
        broker.stop()
    finally:
        for s in socks:
            s.close()


def quota_codes(futures):
    codes = {}
    for name, f in futures.items():
        try:
            f.result(timeout=TIMEOUT_S)
            codes[name] = 0
        except ck.KafkaException as e:
            codes[name] = e.args[0].code()
    return codes


def test_0022_topic_mutations_beyond_the_quota_are_throttled(make_broker):
    # Issue 8 item 3: nothing bounded the partitions one client could create or delete.
    # Kafka's controller mutation quota (KIP-599): with rate 1/s and 11 one-second windows the
    # bucket holds 11 partitions; a change is admitted while the bucket is not negative, so
    # the 20-partition topic overdraws it to -9 and everything after is refused with
    # THROTTLING_QUOTA_EXCEEDED for the next 9 s.
    b = make_broker(["--set", "controller.mutation.rate=1"]).start()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    topics = [NewTopic("quota-0", 20, 1), NewTopic("quota-1", 1, 1), NewTopic("quota-2", 1, 1)]
    start = time.monotonic()
    assert quota_codes(a.create_topics(topics, operation_timeout=TIMEOUT_S)) == {
        "quota-0": 0, "quota-1": THROTTLING_QUOTA_EXCEEDED, "quota-2": THROTTLING_QUOTA_EXCEEDED}
    grow = a.create_partitions([NewPartitions("quota-0", 21)], operation_timeout=TIMEOUT_S)
    assert quota_codes(grow) == {"quota-0": THROTTLING_QUOTA_EXCEEDED}
    gone = a.delete_topics(["quota-0"], operation_timeout=TIMEOUT_S)
    assert quota_codes(gone) == {"quota-0": THROTTLING_QUOTA_EXCEEDED}
    assert time.monotonic() - start < 9, "too slow to observe the exhausted bucket"
    listed = a.list_topics(timeout=TIMEOUT_S).topics
    assert len(listed["quota-0"].partitions) == 20 and "quota-1" not in listed
    b.stop()


# ---- issue 8 item 6: deleted topics never come back -----------------------------------------

def produce_some(broker, topic, count=10):
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(count):
        p.produce(topic, value=b"old-%d" % i, partition=0)
    assert p.flush(TIMEOUT_S) == 0


def high_watermark(broker, topic):
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "hw-" + topic})
    try:
        return c.get_watermark_offsets(ck.TopicPartition(topic, 0), timeout=TIMEOUT_S)[1]
    finally:
        c.close()


def create(broker, topic):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=TIMEOUT_S)


def delete(broker, topic):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.delete_topics([topic], operation_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)


def wait_gone(path):
    deadline = time.monotonic() + TIMEOUT_S
    while os.path.exists(path):
        assert time.monotonic() < deadline, "%s was not removed" % path
        time.sleep(0.05)


def test_0023_recreated_topic_is_empty_in_the_same_run(broker, topic):
    # Issue 8 item 6: delete removed the directories after saving the metadata and only
    # logged a failure, so a re-created name could reopen the old data. The directory is now
    # renamed before the delete answers and removed in the background.
    create(broker, topic)
    produce_some(broker, topic)
    delete(broker, topic)
    assert not os.path.exists(os.path.join(broker.data_dir, topic + "-0"))
    create(broker, topic)
    assert high_watermark(broker, topic) == 0
    marked = [n for n in os.listdir(broker.data_dir) if n.endswith("-delete")]
    for n in marked:
        wait_gone(os.path.join(broker.data_dir, n))


def test_0024_crash_after_the_deletion_record_leaves_no_data(make_broker, topic):
    # Issue 8 item 6: a crash after the deletion was recorded but before the directory was
    # removed (or renamed) left `<topic>-0` on disk; start-up never removed directories the
    # metadata does not know, and re-creating the name reopened the old data. Simulated by
    # putting the directory back after a clean delete.
    b = make_broker().start()
    create(b, topic)
    produce_some(b, topic)
    b.stop()
    part = os.path.join(b.data_dir, topic + "-0")
    saved = os.path.join(os.path.dirname(b.data_dir), "saved-partition")
    shutil.copytree(part, saved)
    b.start()
    delete(b, topic)
    b.stop()
    shutil.rmtree(part, ignore_errors=True)
    shutil.move(saved, part)
    b.start()
    assert "removing partition directory %s: not in the metadata" % part in b.stderr_text()
    create(b, topic)
    assert high_watermark(b, topic) == 0
    b.stop()


def test_0025_crash_after_the_rename_leaves_the_topic_empty(make_broker, topic):
    # Issue 8 item 6: a crash after the partition directory was renamed for deletion but
    # before the deletion was recorded: the topic is still in the metadata, the marked
    # directory is removed at start-up, and the topic (then deleted and created again) is
    # empty.
    b = make_broker().start()
    create(b, topic)
    produce_some(b, topic)
    b.stop()
    part = os.path.join(b.data_dir, topic + "-0")
    marked = part + ".00112233445566778899aabbccddeeff-delete"
    os.rename(part, marked)
    b.start()
    assert "removing deleted partition directory %s" % marked in b.stderr_text()
    wait_gone(marked)
    assert high_watermark(b, topic) == 0
    delete(b, topic)
    create(b, topic)
    assert high_watermark(b, topic) == 0
    b.stop()


def test_0026_crash_before_the_background_removal_finishes(make_broker, topic):
    # Issue 8 item 6: a crash after the deletion was recorded, before the background removal
    # of the renamed directory: start-up removes it, and the name starts empty.
    b = make_broker().start()
    create(b, topic)
    produce_some(b, topic)
    b.stop()
    part = os.path.join(b.data_dir, topic + "-0")
    saved = os.path.join(os.path.dirname(b.data_dir), "saved-partition")
    shutil.copytree(part, saved)
    b.start()
    delete(b, topic)
    b.stop()
    marked = part + ".ffeeddccbbaa99887766554433221100-delete"
    shutil.move(saved, marked)
    b.start()
    wait_gone(marked)
    create(b, topic)
    assert high_watermark(b, topic) == 0
    b.stop()


# ---- issue 8 item 13: dynamic broker configs ------------------------------------------------

API_INCREMENTAL_ALTER_CONFIGS = 44
SOURCE_DYNAMIC_BROKER = 2
SOURCE_DYNAMIC_DEFAULT_BROKER = 3
SOURCE_DEFAULT = 5


def incremental_alter_v0(correlation_id, resource_type, name, ops):
    """IncrementalAlterConfigs v0 for one resource; ops is [(key, op, value)]."""
    body = i32(1) + bytes([resource_type]) + string(name) + i32(len(ops))
    for key, op, value in ops:
        body += string(key) + bytes([op]) + string(value)
    body += b"\x00"  # validate_only
    return frame(header(API_INCREMENTAL_ALTER_CONFIGS, 0, correlation_id) + body)


def incremental_alter_error(payload):
    r = Reader(payload)
    r.i32(), r.i32()  # correlation id, throttle time
    assert r.i32() == 1
    return r.i16(), r.string()


def broker_entry(a, name, key):
    res = ConfigResource("BROKER", name)
    return list(a.describe_configs([res]).values())[0].result(timeout=TIMEOUT_S)[key]


def test_0027_dynamic_broker_configs_apply_at_once_and_persist(make_broker, topic):
    # Issue 8 item 13: AlterConfigs on a broker resource answered INVALID_REQUEST "Cannot
    # update these configs dynamically" for every key, even those Kafka lets an operator change
    # at run time.
    b = make_broker().start()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    create(b, topic)
    per_broker = ConfigResource("BROKER", "1", set_config={"message.max.bytes": "2000",
                                                           "log.retention.ms": "12345"})
    list(a.alter_configs([per_broker]).values())[0].result(timeout=TIMEOUT_S)
    outcome, payload = exchange(b.port, incremental_alter_v0(
        3, 4, "", [("log.segment.bytes", 0, "1048576")]))
    assert outcome == "response" and incremental_alter_error(payload) == (0, None)

    def check():
        e = broker_entry(a, "1", "message.max.bytes")
        assert (e.value, int(e.source), e.is_read_only) == ("2000", SOURCE_DYNAMIC_BROKER, False)
        e = broker_entry(a, "1", "log.segment.bytes")
        assert (e.value, int(e.source)) == ("1048576", SOURCE_DYNAMIC_DEFAULT_BROKER)
        t = list(a.describe_configs([ConfigResource("TOPIC", topic)]).values())[0].result(
            timeout=TIMEOUT_S)
        assert (t["retention.ms"].value, int(t["retention.ms"].source)) == (
            "12345", SOURCE_DYNAMIC_BROKER)
        errors = []
        p = ck.Producer({"bootstrap.servers": b.bootstrap, "retries": 0})
        p.produce(topic, value=b"x" * 5000, partition=0,
                  on_delivery=lambda err, msg: errors.append(err))
        p.flush(TIMEOUT_S)
        assert len(errors) == 1 and errors[0] is not None
        assert errors[0].code() == ck.KafkaError.MSG_SIZE_TOO_LARGE, errors[0]

    check()
    b.stop()
    b.start()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    check()
    # A delete through IncrementalAlterConfigs brings the default back.
    outcome, payload = exchange(b.port, incremental_alter_v0(
        4, 4, "1", [("message.max.bytes", 1, None)]))
    assert outcome == "response" and incremental_alter_error(payload) == (0, None)
    e = broker_entry(a, "1", "message.max.bytes")
    assert (e.value, int(e.source)) == ("1048588", SOURCE_DEFAULT)
    b.stop()


def test_0028_static_broker_configs_stay_refused(broker):
    # Issue 8 item 13: keys Kafka marks read-only keep Kafka's refusal.
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource("BROKER", "1", set_config={"num.partitions": "3"})
    try:
        list(a.alter_configs([res]).values())[0].result(timeout=TIMEOUT_S)
        assert False, "num.partitions was accepted"
    except ck.KafkaException as e:
        err = e.args[0]
        assert err.code() == ck.KafkaError.INVALID_REQUEST
        assert "Cannot update these configs dynamically: num.partitions" in err.str()
    outcome, payload = exchange(broker.port, incremental_alter_v0(
        5, 4, "1", [("log.retention.ms", 0, "abc")]))
    assert outcome == "response"
    code, message = incremental_alter_error(payload)
    assert code == 40 and "Invalid value abc for configuration log.retention.ms" in message
    e = broker_entry(a, "1", "log.retention.ms")
    assert int(e.source) != SOURCE_DYNAMIC_BROKER


def test_0029_partition_data_without_metadata_is_never_removed(tmp_path):
    # Issue 8 item 6, the other side of start-up clean-up: partition directories the
    # metadata does not know are removed as interrupted deletes, but a data directory holding
    # partitions and no metadata at all has lost its metadata store; the node refuses to start
    # there instead of removing the data (or creating a fresh cluster over it).
    data = tmp_path / "data"
    part = data / "orphan-0"
    part.mkdir(parents=True)
    (part / "00000000000000000000.log").write_bytes(b"x" * 100)
    port, http_port, cluster_port = free_ports(3)
    proc = subprocess.run(
        [CHRONIK_BIN, "--port", str(port), "--data-dir", str(data),
         "--set", "http.port=%d" % http_port, "--set", "cluster.port=%d" % cluster_port],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_S)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, "exit status %d; stderr: %s" % (proc.returncode, err)
    assert "holds partition directories (orphan-0) but no metadata" in err, err
    assert (part / "00000000000000000000.log").read_bytes() == b"x" * 100
    # A refused start leaves no metadata of its own behind either.
    assert not (data / "__cluster_metadata-0").exists()
    assert not (data / "meta.properties").exists()


KAFKA_CORRUPT_MESSAGE, KAFKA_MESSAGE_TOO_LARGE, KAFKA_INVALID_RECORD = 2, 10, 87
CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {"uncompressed": CODEC_NONE, "gzip": CODEC_GZIP, "snappy": CODEC_SNAPPY,
               "lz4": CODEC_LZ4, "zstd": CODEC_ZSTD}


def raw_produce(broker, topic, batch, correlation_id=1):
    outcome, payload = exchange(broker.port, produce_v3(correlation_id, topic, batch))
    assert outcome == "response", "the broker closed the connection"
    return produce_v3_answer(payload, correlation_id)


def stored_codecs(broker, topic, offset=0):
    """The codec of every batch stored from offset on, read with a raw Fetch."""
    outcome, payload = exchange(broker.port, fetch_v4(5, topic, 0, offset, 0))
    assert outcome == "response"
    error_code, batches = fetch_v4_batches(payload, 5)
    assert error_code == 0
    return [struct_u16(b, 21) & 7 for b in batches]


def struct_u16(b, at):
    return (b[at] << 8) | b[at + 1]


def create(broker, topic, **configs):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = a.create_topics([NewTopic(topic, 1, 1, config=configs)],
                              operation_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)


def bad_compressed_batches():
    """(name, batch, Kafka's answer): batches whose CRC is right but whose compressed records no
    consumer can decode, or decode to other records than the header promises."""
    values = [b"bad-%d" % i for i in range(5)]
    good = records_section(values)
    packed = gzip.compress(good)
    # Record 0 is: length, attributes, timestamp delta, offset delta, key length (-1 = 0x01).
    bad_key_length = good[:4] + b"\x7e" + good[5:]  # 63 bytes of key in a 12-byte record
    swapped_deltas = records_section(values[:2])
    first = swapped_deltas[0] + 1
    swapped_deltas = (swapped_deltas[:3] + b"\x02" + swapped_deltas[4:first + 3] + b"\x00" +
                      swapped_deltas[first + 4:])
    return [
        ("gzip garbage", batch_of(b"\x1f\x8b\x08\x00" + bytes(range(60)), 5, CODEC_GZIP),
         KAFKA_CORRUPT_MESSAGE),
        ("gzip truncated", batch_of(packed[:-7], 5, CODEC_GZIP), KAFKA_CORRUPT_MESSAGE),
        ("lz4 garbage", batch_of(b"\x04\x22\x4d\x18" + b"\xff" * 40, 5, CODEC_LZ4),
         KAFKA_CORRUPT_MESSAGE),
        ("fewer records than the header says", batch_of(packed, 6, CODEC_GZIP),
         KAFKA_INVALID_RECORD),
        ("more records than the header says", batch_of(packed, 4, CODEC_GZIP),
         KAFKA_INVALID_RECORD),
        ("a bad varint inside a record", batch_of(gzip.compress(bad_key_length), 5, CODEC_GZIP),
         KAFKA_INVALID_RECORD),
        ("offset deltas 1, 0", batch_of(lz4.frame.compress(swapped_deltas), 2, CODEC_LZ4),
         KAFKA_INVALID_RECORD),
    ]


def test_0050_compressed_batches_are_validated(broker, topic):
    # Bug 50 (issue 8 item 9): the broker checked a compressed batch by its header and CRC only,
    # so one client could store a batch whose records no consumer can decode, and every
    # consumer of the partition stopped there. Kafka decompresses and checks each record on
    # produce; so does the broker now, answering as Kafka: CORRUPT_MESSAGE for a payload that
    # does not decompress, INVALID_RECORD for records that do not match the header.
    create(broker, topic)
    good = [b"good-%d" % i for i in range(3)]
    assert raw_produce(broker, topic, batch_of(gzip.compress(records_section(good)), 3,
                                               CODEC_GZIP)) == (0, 0)
    for name, batch, code in bad_compressed_batches():
        assert raw_produce(broker, topic, batch)[0] == code, name
    assert raw_produce(broker, topic, record_batch([b"after"])) == (0, 3)
    # A consumer reads the good data and nothing of the bad batches.
    got = ck_read(broker, topic, 0)
    assert [(r["offset"], r["value"]) for r in got] == [(0, good[0]), (1, good[1]),
                                                        (2, good[2]), (3, b"after")]
    assert broker.alive()


def test_0051_topic_compression_type_recompresses(broker, topic):
    # Bug 51 (issue 8 item 12): a topic's compression.type other than producer was refused
    # with INVALID_CONFIG (librdkafka test 0081), where Kafka accepts it and recompresses on
    # produce. Here the topic asks for gzip, librdkafka sends uncompressed batches, and the
    # stored batches must be gzip with the very same records for both Python clients.
    create(broker, topic, **{"compression.type": "gzip"})
    msgs = helpers.sample_messages(topic, 30, null_header_values=False)
    offsets = ck_produce(broker, topic, msgs, **{"compression.type": "none"})
    assert offsets == list(range(30))
    codecs = stored_codecs(broker, topic)
    assert codecs and set(codecs) == {CODEC_GZIP}, codecs
    helpers.assert_same_records(ck_read(broker, topic, 0), msgs)
    helpers.assert_same_records(kp_read(broker, topic, 0), msgs)


def test_0052_compression_type_altered_and_inherited(make_broker, topic):
    # Bug 52 (issue 8 item 12): AlterConfigs with compression.type=lz4 was refused, and the
    # broker had no compression.type of its own for topics to inherit (Kafka's default is
    # producer). Each produce is stored with the codec in effect when it arrives.
    broker = make_broker(["--set", "compression.type=zstd"]).start()
    create(broker, topic)
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described = a.describe_configs([res])[res].result(timeout=TIMEOUT_S)
    assert described["compression.type"].value == "zstd"
    msgs = helpers.sample_messages(topic, 12)
    ck_produce(broker, topic, msgs[:4], **{"compression.type": "gzip"})
    a.alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic,
                                    set_config={"compression.type": "lz4"})])[res].result(
        timeout=TIMEOUT_S)
    ck_produce(broker, topic, msgs[4:8], **{"compression.type": "snappy"})
    a.alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic,
                                    set_config={"compression.type": "uncompressed"})])[res].result(
        timeout=TIMEOUT_S)
    ck_produce(broker, topic, msgs[8:], **{"compression.type": "zstd"})
    codecs = stored_codecs(broker, topic)
    # The producer may split each group of four records into several batches.
    runs = [c for i, c in enumerate(codecs) if i == 0 or codecs[i - 1] != c]
    assert runs == [CODEC_ZSTD, CODEC_LZ4, CODEC_NONE], codecs
    helpers.assert_same_records(ck_read(broker, topic, 0), msgs)


def test_0053_recompressed_batch_over_max_message_bytes(broker, topic):
    # Bug 53 (issue 8 item 12): a batch that grows when the broker recompresses it (here
    # decompresses, for compression.type=uncompressed) must still fit max.message.bytes, as in
    # Kafka, which checks the size again after conversion: MESSAGE_TOO_LARGE otherwise.
    create(broker, topic, **{"compression.type": "uncompressed", "max.message.bytes": "4000"})
    big = batch_of(gzip.compress(records_section([b"\x00" * 20000])), 1, CODEC_GZIP)
    assert len(big) < 4000
    assert raw_produce(broker, topic, big)[0] == KAFKA_MESSAGE_TOO_LARGE
    small = batch_of(gzip.compress(records_section([b"\x00" * 2000])), 1, CODEC_GZIP)
    assert raw_produce(broker, topic, small) == (0, 0)
    assert stored_codecs(broker, topic) == [CODEC_NONE]


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
        # Partitions open in the background in no set order: wait until none is still opening
        # (CI once read partition 2's error while 1 and 3 were still opening).
        if NOT_LEADER_OR_FOLLOWER not in errors.values():
            break
        assert time.monotonic() < deadline, "partitions never finished opening: %r" % errors
        time.sleep(0.01)  # polls the observed state
    assert errors == {0: 0, 1: 0, 2: KAFKA_STORAGE_ERROR, 3: 0}
    assert "cannot open partition" in b.stderr_text()
    serves(b)
    b.stop()


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
    # Partitions open in the background after the listener starts (item 19): wait until the
    # opener has reached both, i.e. partition 1 has a leader and the damage has been reported.
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        parts = admin.list_topics(topic, timeout=TIMEOUT_S).topics[topic].partitions
        err = b.stderr_text()
        lines = [line for line in err.splitlines() if "is damaged" in line]
        if (lines and parts[1].leader >= 0) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) == 1 and seg in lines[0] and "offset 3" in lines[0], err
    with open(seg, "rb") as f:
        assert f.read() == damaged, "recovery changed the damaged partition's file"
    assert parts[0].error is not None and parts[0].leader == -1, parts[0]
    assert parts[1].error is None and parts[1].leader >= 0, parts[1]
    # The damaged partition refuses produce with KAFKA_STORAGE_ERROR (56), not a retriable error.
    assert produce_errors(b.port, topic, [0]) == {0: KAFKA_STORAGE_ERROR}
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


def test_0080_produce_to_transaction_state_is_refused(broker):
    """__transaction_state took a client's Produce like any topic (only __consumer_offsets was
    refused), so a client could write records the transaction coordinator loads as its state
    (a forged or corrupt one fails the partition's load). Kafka refuses appends to internal
    topics with INVALID_TOPIC_EXCEPTION."""
    # FindCoordinator for a transactional id creates the topic (the request waits for it).
    body = string("t0080") + b"\x01"
    kind, payload = exchange(broker.port, frame(header(10, 1, 3) + body))
    assert kind == "response"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    md = helpers.wait_until(
        lambda: admin.list_topics(timeout=10).topics.get("__transaction_state"), 30,
        "__transaction_state created")
    assert len(md.partitions) == 50
    kind, payload = exchange(broker.port,
                             produce_v3(7, "__transaction_state", record_batch([b"forged"])))
    assert kind == "response"
    error, _ = produce_v3_answer(payload, 7)
    assert error == 17  # INVALID_TOPIC_EXCEPTION
