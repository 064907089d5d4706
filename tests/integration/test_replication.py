"""Replicated partitions on a three-node cluster of real processes with real clients (issue 10,
"Tests"): every partition of a topic with replication factor 3 is a Raft group over its log.

Each test names the bug it catches. Faults are real: kill -9 (the page cache survives it, so
these tests catch acknowledgement and fail-over bugs, not a missing fsync: the simulated-disk
tests and tests/sim/cluster_sim do that), SIGTERM and wiped data directories.
"""

import os
import shutil
import signal
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as kw
from cluster_harness import Cluster
from helpers import wait_until

TIMEOUT_S = 30
NOT_LEADER_OR_FOLLOWER = 6
NOT_ENOUGH_REPLICAS = 19
NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20
REQUEST_TIMED_OUT = 7

# A follower is out of the ISR one second after it stopped acknowledging (default 30 s);
# retention is applied every half second (default 30 s).
FAST_ISR = ["--set", "replica.lag.time.max.ms=1000",
            "--set", "log.retention.check.interval.ms=500"]


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path, 3, extra_args=FAST_ISR).start()
    yield c
    c.stop()


def create_topic(c, name, partitions, config=None, node=1):
    """Creates the topic (replication factor 3) and waits until every node names each
    partition's preferred replica (the first) as its leader: a new partition's first election
    is anyone's, and its leader then hands the leadership to the preferred replica."""
    admin = AdminClient({"bootstrap.servers": c.bootstrap(node)})
    fut = admin.create_topics([NewTopic(name, partitions, 3, config=config or {})],
                              request_timeout=TIMEOUT_S)
    fut[name].result(timeout=TIMEOUT_S)
    for p in range(partitions):
        preferred = c.metadata(node, name).topics[name].partitions[p].replicas[0]
        wait_until(lambda: all(partition_state(c, n, name, p)[0] == preferred for n in c.nodes),
                   TIMEOUT_S, "%s-%d led by its preferred replica %d" % (name, p, preferred))


def partition_state(c, node, topic, partition):
    """(leader, isr) as node answers Metadata; leader -1 while there is none."""
    md = c.metadata(node, topic)
    p = md.topics[topic].partitions[partition]
    return p.leader, sorted(p.isrs)


def wait_leader(c, topic, partition, alive):
    """The leader every alive node agrees on, once there is one among them."""
    def agreed():
        seen = {partition_state(c, n, topic, partition)[0] for n in alive}
        return seen.pop() if len(seen) == 1 and list(seen)[0] in alive else None
    return wait_until(agreed, TIMEOUT_S, "an agreed leader of %s-%d" % (topic, partition))


def produce(bootstrap, topic, values, partition=0, acks="all", conf=None):
    """Sends values (conf: more producer settings); returns ({value: offset} acknowledged,
    [errors])."""
    acked, errors = {}, []

    def report(err, msg):
        if err is None:
            acked[msg.value().decode()] = msg.offset()
        else:
            errors.append(err)

    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                  "message.timeout.ms": TIMEOUT_S * 1000, **(conf or {})})
    for v in values:
        p.produce(topic, v.encode(), partition=partition, on_delivery=report)
        p.poll(0)
    assert p.flush(TIMEOUT_S + 5) == 0
    return acked, errors


def consume_all(bootstrap, topic, partition, count):
    """{offset: value} of the first count records of the partition (control records, such as a
    new leader's no-op, take offsets but are not records)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "check-%d" % time.monotonic_ns(),
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, 0)])
    got = {}
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < count and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        assert m.offset() not in got, "offset %d read twice" % m.offset()
        got[m.offset()] = m.value().decode()
    c.close()
    assert len(got) >= count, "read %d of %d records" % (len(got), count)
    return got


def partition_batches(node, topic, partition):
    """{base offset: batch bytes} of the partition's log as node has it on disk."""
    d = os.path.join(node.data_dir, "%s-%d" % (topic, partition))
    out = {}
    for name in sorted(n for n in os.listdir(d) if n.endswith(".log")):
        try:
            data = open(os.path.join(d, name), "rb").read()
        except FileNotFoundError:  # a segment removed meanwhile
            continue
        at = 0
        while at + 12 <= len(data):
            length = struct.unpack(">i", data[at + 8:at + 12])[0]
            if length <= 0 or at + 12 + length > len(data):
                break
            out[struct.unpack(">q", data[at:at + 8])[0]] = data[at:at + 12 + length]
            at += 12 + length
    return out


def consume_from(bootstrap, topic, partition, offset, count):
    """{offset: value} of the first count records from offset on."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "check-%d" % time.monotonic_ns(),
                  "enable.auto.commit": False, "auto.offset.reset": "error"})
    c.assign([TopicPartition(topic, partition, offset)])
    got = {}
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < count and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        assert not m.error(), m.error()
        got[m.offset()] = m.value().decode()
    c.close()
    assert len(got) >= count, "read %d of %d records" % (len(got), count)
    return got


def partition_log_bytes(node, topic, partition):
    """The partition's batches, in offset order, as node has them on disk (segment files are
    preallocated: a segment's batches end where the next batch length is zero); None while the
    partition has no directory yet."""
    d = os.path.join(node.data_dir, "%s-%d" % (topic, partition))
    if not os.path.isdir(d):
        return None
    out = []
    for name in sorted(n for n in os.listdir(d) if n.endswith(".log")):
        data = open(os.path.join(d, name), "rb").read()
        at = 0
        while at + 12 <= len(data):
            length = struct.unpack(">i", data[at + 8:at + 12])[0]
            if length <= 0 or at + 12 + length > len(data):
                break
            out.append(data[at:at + 12 + length])
            at += 12 + length
    return b"".join(out)


def kafka_tp(topic, partition):
    from kafka import TopicPartition as KafkaTopicPartition
    return KafkaTopicPartition(topic, partition)


def raw_produce(port, topic, values, timeout_ms=kw.TIMEOUT_S * 1000, partition=0):
    """(error_code, base_offset) of one Produce v3 (acks=all, the request's timeout_ms) of
    values to the partition."""
    s = kw.send(port, kw.produce_v3(7, topic, kw.record_batch([v.encode() for v in values]),
                                    timeout_ms, partition))
    try:
        s.settimeout(timeout_ms / 1000 + TIMEOUT_S)
        kind, payload = kw.receive(s)
    finally:
        s.close()
    assert kind == "response", "the connection closed without an answer"
    return kw.produce_v3_answer(payload, 7)


def raw_delete_records(port, topic, offset):
    """(error code, low watermark) of a DeleteRecords v0 of partition 0 up to offset."""
    body = (kw.i32(1) + kw.string(topic) + kw.i32(1) + kw.i32(0) + kw.i64(offset) +
            kw.i32(TIMEOUT_S * 1000))
    kind, payload = kw.exchange(port, kw.frame(kw.header(21, 0, 11) + body))
    assert kind == "response"
    at = 8 + 4 + 2 + len(topic) + 4  # correlation, throttle, topic count, name, partitions
    _, low, error = struct.unpack(">iqh", payload[at:at + 14])
    return error, low


def find_coordinator(port, group):
    """The coordinator's node id from FindCoordinator v0, once one is available."""
    def ask():
        kind, payload = kw.exchange(port, kw.frame(kw.header(10, 0, 9) + kw.string(group)))
        assert kind == "response"
        error, node = struct.unpack(">hi", payload[4:10])
        return node if error == 0 else None
    return wait_until(ask, TIMEOUT_S, "a coordinator for %s" % group)


def test_acknowledged_records_survive_leader_kill(cluster):
    """acks=all records survive kill -9 of the partition's leader, each at the offset it was
    acknowledged with, and every replica ends up with the leader's exact bytes. Catches: an
    acknowledgement before a majority holds the batch, a new leader reusing offsets of
    acknowledged records, followers storing other bytes than the leader's."""
    c = cluster
    create_topic(c, "r", 1, {"min.insync.replicas": "2"})
    leader = wait_leader(c, "r", 0, [1, 2, 3])
    first, errors = produce(c.bootstrap(leader), "r", ["a%d" % i for i in range(300)])
    assert not errors and len(first) == 300
    c.nodes[leader].kill()
    alive = [n for n in (1, 2, 3) if n != leader]
    new_leader = wait_leader(c, "r", 0, alive)
    second, errors = produce(c.bootstrap(alive[0]), "r", ["b%d" % i for i in range(300)])
    assert not errors and len(second) == 300
    acked = {**first, **second}
    assert len(set(acked.values())) == len(acked), "two acknowledged records share an offset"
    got = consume_all(c.bootstrap(new_leader), "r", 0, len(acked))
    for value, offset in acked.items():
        assert got.get(offset) == value, "acknowledged %s at %d, read %r" % (
            value, offset, got.get(offset))
    # The killed node comes back, catches up and rejoins the ISR; then all three logs match.
    c.nodes[leader].launch()
    c.wait_serving([leader])
    wait_until(lambda: partition_state(c, new_leader, "r", 0)[1] == [1, 2, 3], TIMEOUT_S,
               "node %d back in the ISR" % leader)
    logs = wait_until(lambda: (lambda ls: ls if len(set(ls)) == 1 else None)(
        [partition_log_bytes(c.nodes[n], "r", 0) for n in (1, 2, 3)]), TIMEOUT_S,
        "identical replica logs")
    assert len(logs[0]) > 600 * 2


def test_leader_kill_answered_with_the_next_leader(tmp_path):
    """Fail-over time. With a long election timeout (2 s), kill -9 of a partition's leader:
    the first Metadata a survivor answers right after the kill already names the new leader.
    Catches: survivors waiting an election timeout although the dead leader's connection closed
    at once (the answer would name no leader, or the dead one, for 2 s or more), and Metadata
    answering "no leader" during the election, which librdkafka 2.0 follows with up to a second
    of waiting before it asks again (a survivor holds the answer until the election is over)."""
    c = Cluster(tmp_path, 3, extra_args=FAST_ISR + [
        "--set", "controller.quorum.election.timeout.ms=2000"]).start()
    try:
        create_topic(c, "fo", 1, {"min.insync.replicas": "2"})
        leader = wait_leader(c, "fo", 0, [1, 2, 3])
        first, errors = produce(c.bootstrap(leader), "fo", ["a%d" % i for i in range(20)])
        assert not errors
        alive = [n for n in (1, 2, 3) if n != leader]
        c.nodes[leader].kill()
        kind, payload = kw.exchange(c.nodes[alive[0]].port, kw.metadata_v4(31, ["fo"]))
        assert kind == "response"
        err, named = kw.metadata_v4_leaders(payload, 31)[("fo", 0)]
        assert err == 0 and named in alive, (
            "right after the kill of leader %d node %d answered error %d, leader %d" % (
                leader, alive[0], err, named))
        second, errors = produce(c.bootstrap(named), "fo", ["b%d" % i for i in range(20)])
        assert not errors and len(second) == 20
    finally:
        c.stop()


def test_min_insync_refusal(cluster):
    """acks=all is refused with NOT_ENOUGH_REPLICAS, before anything is appended, once the
    leader's ISR is smaller than min.insync.replicas (one node down, min.insync 3); with two of
    three down nothing is acknowledged at all (min.insync 2). Catches: min.insync.replicas not
    enforced, a refused batch appended anyway, a minority leader acknowledging."""
    c = cluster
    create_topic(c, "m3", 1, {"min.insync.replicas": "3"})
    create_topic(c, "m2", 1, {"min.insync.replicas": "2"})
    leader = wait_leader(c, "m3", 0, [1, 2, 3])
    assert raw_produce(c.nodes[leader].port, "m3", ["ok"])[0] == 0
    follower = next(n for n in (1, 2, 3) if n != leader)
    c.nodes[follower].kill()
    wait_until(lambda: len(partition_state(c, leader, "m3", 0)[1]) == 2, TIMEOUT_S,
               "the ISR without node %d" % follower)
    before = partition_log_bytes(c.nodes[leader], "m3", 0)
    err, _ = raw_produce(c.nodes[leader].port, "m3", ["refused"])
    assert err == NOT_ENOUGH_REPLICAS
    assert partition_log_bytes(c.nodes[leader], "m3", 0) == before, "a refused batch was written"
    # min.insync 2 with one node down still takes acks=all.
    m2_leader = wait_leader(c, "m2", 0, [n for n in (1, 2, 3) if n != follower])
    assert raw_produce(c.nodes[m2_leader].port, "m2", ["two of three"])[0] == 0
    # Two of three down: no leader can commit; every attempt is refused, none acknowledged.
    other = next(n for n in (1, 2, 3) if n not in (follower, m2_leader))
    c.nodes[other].kill()
    survivor = m2_leader
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        err, _ = raw_produce(c.nodes[survivor].port, "m2", ["refused"])
        assert err in (NOT_ENOUGH_REPLICAS, NOT_LEADER_OR_FOLLOWER), err
    # Back to three: the partition serves again and never acknowledged the refused records.
    for n in (follower, other):
        c.nodes[n].launch()
    c.wait_serving()
    m2_leader = wait_leader(c, "m2", 0, [1, 2, 3])
    err, offset = raw_produce(c.nodes[m2_leader].port, "m2", ["after"])
    assert err == 0


def test_acks_all_short_of_min_insync_is_answered(tmp_path):
    """An acks=all produce accepted with min.insync.replicas 3 of 3 whose follower died before
    the leader took it out of the ISR is answered as Kafka answers it: REQUEST_TIMED_OUT at the
    request's timeout while the ISR still names the dead follower, NOT_ENOUGH_REPLICAS_AFTER_APPEND
    as soon as the ISR no longer does, and the next one is refused before it is appended.
    Catches: such a produce held with no end (librdkafka waited out its 110 s socket timeout
    and never learnt of a record consumers could already read)."""
    lag_ms = 6000
    c = Cluster(tmp_path, 3, extra_args=["--set", "replica.lag.time.max.ms=%d" % lag_ms]).start()
    try:
        create_topic(c, "mi", 1, {"min.insync.replicas": "3"})
        leader = wait_leader(c, "mi", 0, [1, 2, 3])
        port = c.nodes[leader].port
        assert raw_produce(port, "mi", ["all three"])[0] == 0
        follower = next(n for n in (1, 2, 3) if n != leader)
        c.nodes[follower].kill()
        killed = time.monotonic()
        assert len(partition_state(c, leader, "mi", 0)[1]) == 3
        err, offset = raw_produce(port, "mi", ["timed out"], timeout_ms=300)
        assert (err, offset) == (REQUEST_TIMED_OUT, -1)
        # Sent well within the lag, so accepted; its request outlives the lag.
        assert time.monotonic() - killed < lag_ms / 2000, "the first produce took too long"
        err, offset = raw_produce(port, "mi", ["after append"], timeout_ms=4 * lag_ms)
        assert (err, offset) == (NOT_ENOUGH_REPLICAS_AFTER_APPEND, -1)
        # The leader's own ISR shrank; Metadata shows it once the controller has the report.
        wait_until(lambda: len(partition_state(c, leader, "mi", 0)[1]) == 2, TIMEOUT_S,
                   "the ISR without node %d" % follower)
        assert raw_produce(port, "mi", ["refused"])[0] == NOT_ENOUGH_REPLICAS
        # Both answered records were written and committed, as in Kafka: a reader sees them.
        consumer = Consumer({"bootstrap.servers": c.bootstrap(leader), "group.id": "mi",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        try:
            consumer.assign([TopicPartition("mi", 0, 0)])
            seen = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(seen) < 3 and time.monotonic() < deadline:
                m = consumer.poll(0.5)
                if m is not None and not m.error():
                    seen.append(m.value().decode())
            assert seen == ["all three", "timed out", "after append"]
        finally:
            consumer.close()
    finally:
        c.stop()


def test_stopped_nodes_leave_every_isr(tmp_path):
    """SIGTERM takes the node out of the ISR of every partition it replicates before it exits,
    as Kafka's controlled shutdown does, whether it led or followed there: the survivors' ISR is
    the two of them and acks=all with min.insync.replicas 3 is refused with NOT_ENOUGH_REPLICAS
    long before replica.lag.time.max.ms (10 minutes here). A node killed -9 leaves them once the
    controller fences it (broker.session.timeout.ms, 3 s here). Restarted, the node is back in
    every ISR and the produce is taken. The last nodes of the cluster, with no controller left,
    stop at once rather than at controlled.shutdown.timeout.ms. A topic created while a node is
    stopped is placed on the others.
    Catches: a stopped or fenced node kept in the ISR until the lag time (min.insync refusals
    late, acks=all waits that end in timeouts), one kept out after it is back, shutdowns that
    wait for a controller that is gone (or hand a leadership to a stopped follower), and new
    replicas placed on a node that has stopped."""
    lag_ms, shutdown_ms = 600000, 20000
    c = Cluster(tmp_path, 3, extra_args=[
        "--set", "replica.lag.time.max.ms=%d" % lag_ms,
        "--set", "controlled.shutdown.timeout.ms=%d" % shutdown_ms,
        "--set", "broker.heartbeat.interval.ms=500",
        "--set", "broker.session.timeout.ms=3000"]).start()

    def isr_is(p, want, nodes):
        wait_until(lambda: all(partition_state(c, n, "cs3", p)[1] == want for n in nodes),
                   TIMEOUT_S, "cs3-%d's ISR %s" % (p, want))

    def answer(p, alive, value):
        """The leader's answer, asked again while the leadership moves (a new leader hands it
        on to the preferred replica once that one is alive and caught up)."""
        def settled():
            err = raw_produce(c.nodes[wait_leader(c, "cs3", p, alive)].port, "cs3", [value],
                              partition=p)[0]
            return None if err == NOT_LEADER_OR_FOLLOWER else (err,)
        return wait_until(settled, TIMEOUT_S, "an answer from cs3-%d's leader" % p)[0]

    def refused_without(gone):
        alive = [n for n in (1, 2, 3) if n != gone]
        for p in range(3):
            isr_is(p, alive, alive)
            assert answer(p, alive, "refused") == NOT_ENOUGH_REPLICAS

    def back(node, tag):
        c.nodes[node].launch()
        c.wait_serving([node])
        for p in range(3):
            isr_is(p, [1, 2, 3], [1, 2, 3])
            assert answer(p, [1, 2, 3], tag) == 0

    try:
        create_topic(c, "cs3", 3, {"min.insync.replicas": "3"})
        leaders = {p: wait_leader(c, "cs3", p, [1, 2, 3]) for p in range(3)}
        stopped = leaders[0]
        assert stopped in leaders.values() and set(leaders.values()) != {stopped}, leaders
        for p in range(3):
            port = c.nodes[leaders[p]].port
            assert raw_produce(port, "cs3", ["before %d" % p], partition=p)[0] == 0
        c.nodes[stopped].stop()  # SIGTERM; fails unless it exits 0
        refused_without(stopped)
        # A topic created meanwhile with the default replication factor goes to the two that
        # remain (not on the node that went, nor refused for want of a third).
        alive = [n for n in (1, 2, 3) if n != stopped]
        admin = AdminClient({"bootstrap.servers": c.bootstrap(alive[0])})
        admin.create_topics([NewTopic("meanwhile", 2)])["meanwhile"].result(timeout=TIMEOUT_S)
        for p in c.metadata(alive[0], "meanwhile").topics["meanwhile"].partitions.values():
            assert sorted(p.replicas) == alive, p.replicas
        back(stopped, "after a stop")
        killed = leaders[1]
        c.nodes[killed].kill()
        refused_without(killed)
        back(killed, "after a kill")
        for n in (1, 2, 3):
            t0 = time.monotonic()
            c.nodes[n].stop()
            took = time.monotonic() - t0
            assert took < shutdown_ms / 2000, "node %d took %.1f s to stop" % (n, took)
    finally:
        c.stop()


def test_offsets_for_times_of_replayed_data(cluster):
    """Records whose timestamps are older than the partition's elections (replayed data) are
    found by timestamp: each lookup answers the first record at or after it, through every
    node's leader, also after a fail-over writes another election's no-op among them.
    Catches: every lookup answering the first no-op's offset (0), whose timestamp is the
    election's wall clock."""
    c = cluster
    create_topic(c, "ts", 1)
    leader = wait_leader(c, "ts", 0, [1, 2, 3])
    t0 = 1700000000000
    offsets = {}

    def send(first, count):
        errors = []

        def report(err, m):
            if err is None:
                offsets[m.value()] = m.offset()
            else:
                errors.append(err)

        p = Producer({"bootstrap.servers": c.bootstrap(leader), "acks": "all"})
        for i in range(first, first + count):
            p.produce("ts", b"r%d" % i, partition=0, timestamp=t0 + i * 1000, on_delivery=report)
        assert p.flush(TIMEOUT_S) == 0 and not errors, errors

    def check():
        consumer = Consumer({"bootstrap.servers": c.bootstrap(leader), "group.id": "ts"})
        try:
            for i in range(len(offsets)):
                asked = [TopicPartition("ts", 0, t0 + i * 1000 - 500)]
                got = consumer.offsets_for_times(asked, timeout=TIMEOUT_S)[0].offset
                assert got == offsets[b"r%d" % i], (i, got)
            late = [TopicPartition("ts", 0, t0 + len(offsets) * 1000)]
            assert consumer.offsets_for_times(late, timeout=TIMEOUT_S)[0].offset == -1
        finally:
            consumer.close()

    send(0, 5)
    check()
    c.nodes[leader].stop()
    leader = wait_leader(c, "ts", 0, [n for n in (1, 2, 3) if n != leader])
    send(5, 5)
    check()


def test_clients_never_see_raft_no_ops(cluster):
    """A replicated partition's Raft no-ops (each new leader's first entry) reach no client: a
    new topic reads as empty with its end at 0 (kcat -e ends at once), kafka-python 2.0.2, which
    hands control batches to the application, gets exactly the records produced, before and
    after a fail-over, and a consumer past every record is at the end the broker shows, before
    anything new is written. Catches: kafka-python applications handed the no-ops as records
    (key 00 00 00 02, value None), and an end one no-op beyond the last record, so that a
    caught-up consumer showed lag 1 after every leader change."""
    from kafka import KafkaConsumer
    c = cluster
    create_topic(c, "np", 1)
    leader = wait_leader(c, "np", 0, [1, 2, 3])
    kcat = subprocess.run(["kcat", "-C", "-b", c.bootstrap(leader), "-t", "np", "-o", "beginning",
                           "-e", "-q", "-f", "%o\\n"], capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert kcat.returncode == 0 and kcat.stdout == "", (kcat.stdout, kcat.stderr)

    def end_offset(node):
        consumer = Consumer({"bootstrap.servers": c.bootstrap(node), "group.id": "np-end"})
        try:
            return consumer.get_watermark_offsets(TopicPartition("np", 0), timeout=TIMEOUT_S)[1]
        finally:
            consumer.close()

    assert end_offset(leader) == 0
    first, errors = produce(c.bootstrap(leader), "np", ["a", "b", "c"])
    assert not errors
    reader = KafkaConsumer(bootstrap_servers=c.bootstrap(leader), group_id=None,
                           auto_offset_reset="earliest", consumer_timeout_ms=3000)
    tp = kafka_tp("np", 0)
    reader.assign([tp])

    def read_all(want):
        got = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < want and time.monotonic() < deadline:
            for records in reader.poll(timeout_ms=500).values():
                got.extend((r.offset, r.value) for r in records)
        return got

    assert read_all(3) == sorted((o, v.encode()) for v, o in first.items())
    # A fail-over writes another no-op after the records: the end stays where they end.
    end = max(first.values()) + 1
    c.nodes[leader].stop()
    alive = [n for n in (1, 2, 3) if n != leader]
    leader = wait_leader(c, "np", 0, alive)
    assert end_offset(leader) == end
    second, errors = produce(c.bootstrap(leader), "np", ["d", "e"])
    assert not errors and min(second.values()) > end
    assert read_all(2) == sorted((o, v.encode()) for v, o in second.items())
    assert reader.poll(timeout_ms=500) == {}
    reader.close()
    assert end_offset(leader) == max(second.values()) + 1


def test_wiped_replica_rejoins(cluster):
    """A follower whose data directory is wiped while it is down rejoins on restart, catches up
    from the leader and is back in the ISR without operator action, holding the leader's bytes.
    Catches: a replica that cannot start from an empty log, or that never re-enters the ISR."""
    c = cluster
    create_topic(c, "w", 1, {"min.insync.replicas": "2"})
    leader = wait_leader(c, "w", 0, [1, 2, 3])
    acked, errors = produce(c.bootstrap(leader), "w", ["w%d" % i for i in range(500)])
    assert not errors
    # Node 1 founds the cluster when its directory is empty: wipe another one.
    victim = next(n for n in (2, 3) if n != leader)
    c.nodes[victim].kill()
    shutil.rmtree(c.nodes[victim].data_dir)
    more, errors = produce(c.bootstrap(leader), "w", ["x%d" % i for i in range(100)])
    assert not errors
    # Out of the ISR first, so that being back in it below is the rejoin's doing (CI once saw
    # it still listed from before the kill, and read the wiped node's log before it existed).
    wait_until(lambda: victim not in partition_state(c, leader, "w", 0)[1], TIMEOUT_S,
               "the killed node out of the ISR")
    c.nodes[victim].launch()
    c.wait_serving([victim])
    wait_until(lambda: victim in partition_state(c, leader, "w", 0)[1], TIMEOUT_S,
               "the wiped node back in the ISR")
    wait_until(lambda: partition_log_bytes(c.nodes[victim], "w", 0) ==
               partition_log_bytes(c.nodes[leader], "w", 0), TIMEOUT_S,
               "the wiped replica holding the leader's log")


def test_follower_below_log_start_installs_snapshot(tmp_path):
    """Issue 10: the leader's log start moves (DeleteRecords on replication factor 3, which
    drops the segments below it) past everything a node down meanwhile holds. Restarted, that
    node installs the leader's log start as a snapshot, catches up by replication, is back in
    the ISR without operator action and holds the leader's bytes at the same offsets from the
    new start; leadership then returns to it (it is the preferred replica) and a consumer
    reading from it sees every acknowledged record at or above the low watermark, which has
    not gone back. Catches: a follower below the leader's log start stuck outside the ISR for
    good (the host sent no snapshot), DeleteRecords refused on replicated partitions
    (POLICY_VIOLATION), a log start the next leader does not know."""
    c = Cluster(tmp_path, 3, extra_args=FAST_ISR + [
        "--set", "leader.imbalance.check.interval.seconds=1"]).start()
    try:
        create_topic(c, "s", 1, {"min.insync.replicas": "2", "segment.bytes": "65536"})
        victim = wait_leader(c, "s", 0, [1, 2, 3])  # the preferred replica
        pad = "x" * 200
        small = {"batch.size": 16384}  # batches well below segment.bytes
        first, errors = produce(c.bootstrap(victim), "s", ["a%d%s" % (i, pad) for i in range(400)],
                                conf=small)
        assert not errors and len(first) == 400
        c.nodes[victim].kill()
        leader = wait_leader(c, "s", 0, [n for n in (1, 2, 3) if n != victim])
        second, errors = produce(c.bootstrap(leader), "s",
                                 ["b%d%s" % (i, pad) for i in range(1200)], conf=small)
        assert not errors and len(second) == 1200
        acked = {**first, **second}
        low = max(second.values()) - 300
        assert low > max(first.values()) + 100
        assert raw_delete_records(c.nodes[leader].port, "s", low) == (0, low)
        wait_until(lambda: min(partition_batches(c.nodes[leader], "s", 0)) >
                   max(first.values()), TIMEOUT_S, "the leader's segments below its start gone")

        c.nodes[victim].launch()
        c.wait_serving([victim])
        wait_until(lambda: victim in partition_state(c, leader, "s", 0)[1], TIMEOUT_S,
                   "node %d back in the ISR" % victim)

        def same_suffix():
            mine = partition_batches(c.nodes[victim], "s", 0)
            theirs = partition_batches(c.nodes[leader], "s", 0)
            if not mine or min(mine) > low:
                return False
            return {k: v for k, v in theirs.items() if k >= min(mine)} == mine
        wait_until(same_suffix, TIMEOUT_S, "node %d holding the leader's batches" % victim)
        assert max(first.values()) < min(partition_batches(c.nodes[victim], "s", 0))

        # The preferred replica leads again: a fail-over to the node that installed.
        wait_until(lambda: all(partition_state(c, n, "s", 0)[0] == victim for n in (1, 2, 3)),
                   TIMEOUT_S, "node %d leading again" % victim)
        want = {off: v for v, off in acked.items() if off >= low}
        got = consume_from(c.bootstrap(victim), "s", 0, low, len(want))
        for off, v in want.items():
            assert got.get(off) == v, "acknowledged %r at %d, read %r" % (v, off, got.get(off))
        cons = Consumer({"bootstrap.servers": c.bootstrap(victim), "group.id": "wm"})
        lo, hi = cons.get_watermark_offsets(TopicPartition("s", 0), timeout=TIMEOUT_S)
        cons.close()
        assert lo == low and hi > max(acked.values())
        # DeleteRecords on the new leader: every replica, and the next leader, follow.
        low2 = low + 100
        assert raw_delete_records(c.nodes[victim].port, "s", low2) == (0, low2)
        c.nodes[victim].kill()
        other = wait_leader(c, "s", 0, [n for n in (1, 2, 3) if n != victim])
        cons = Consumer({"bootstrap.servers": c.bootstrap(other), "group.id": "wm2"})
        lo, _ = cons.get_watermark_offsets(TopicPartition("s", 0), timeout=TIMEOUT_S)
        cons.close()
        assert lo == low2, "the low watermark went back from %d to %d" % (low2, lo)
    finally:
        c.stop()


def test_follower_below_retention_start_catches_up(cluster):
    """Issue 10: retention (retention.bytes, small segments) on the leader drops the segments
    a follower that is down still needs; restarted, it installs a snapshot, catches up from the
    leader's remaining segments and is back in the ISR, holding the leader's bytes from its new
    start. Catches: a follower below the leader's log start stuck outside the ISR for good, and
    log.retention.check.interval.ms not honoured (half a second here: the log start has to move
    within 10 s, where the default interval is 30 s)."""
    c = cluster
    create_topic(c, "rt", 1, {"min.insync.replicas": "2", "segment.bytes": "65536",
                              "retention.bytes": "131072"})
    leader = wait_leader(c, "rt", 0, [1, 2, 3])
    victim = next(n for n in (2, 3) if n != leader)  # node 1 founds clusters: keep it simple
    pad = "y" * 200
    small = {"batch.size": 16384}
    first, errors = produce(c.bootstrap(leader), "rt", ["a%d%s" % (i, pad) for i in range(300)],
                            conf=small)
    assert not errors
    c.nodes[victim].kill()
    second, errors = produce(c.bootstrap(leader), "rt",
                             ["b%d%s" % (i, pad) for i in range(1500)], conf=small)
    assert not errors

    def low_watermark():
        """The leader's log start; -1 while the client does not know the partition yet (it
        may have asked the stopped node first)."""
        cons = Consumer({"bootstrap.servers": c.bootstrap(leader), "group.id": "rt"})
        try:
            lo, _ = cons.get_watermark_offsets(TopicPartition("rt", 0), timeout=TIMEOUT_S)
        except KafkaException:
            lo = -1
        cons.close()
        return lo
    wait_until(lambda: low_watermark() > max(first.values()) + 1, 10,
               "retention moving the leader's log start past the stopped follower's log")
    start = low_watermark()

    c.nodes[victim].launch()
    c.wait_serving([victim])
    wait_until(lambda: victim in partition_state(c, leader, "rt", 0)[1], TIMEOUT_S,
               "node %d back in the ISR" % victim)

    def same_suffix():
        mine = partition_batches(c.nodes[victim], "rt", 0)
        theirs = partition_batches(c.nodes[leader], "rt", 0)
        return bool(mine) and min(mine) <= start and \
            {k: v for k, v in theirs.items() if k >= min(mine)} == mine
    wait_until(same_suffix, TIMEOUT_S, "node %d holding the leader's batches" % victim)
    assert min(partition_batches(c.nodes[victim], "rt", 0)) > max(first.values())


def test_group_offsets_survive_coordinator_loss(cluster):
    """Committed offsets live in the replicated __consumer_offsets: after kill -9 of the group's
    coordinator, another node becomes coordinator (its offsets partition's new leader) and a
    consumer of the group resumes at the committed offset. Catches: a coordinator that does not
    follow its partition's leadership, offsets lost with one node."""
    c = cluster
    create_topic(c, "g", 1)
    acked, errors = produce(c.bootstrap(1), "g", ["g%d" % i for i in range(50)])
    assert not errors
    # A member's leave reaches the group's log only with the rebalance it starts: a coordinator
    # killed right after it may come back (with its partition's next leader) with the member,
    # which then holds the group until its session ends (as in Kafka). A short session bounds it.
    conf = {"bootstrap.servers": c.bootstrap(1), "group.id": "survivors",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000}
    cons = Consumer(conf)
    cons.subscribe(["g"])
    read = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(read) < 20 and time.monotonic() < deadline:
        m = cons.poll(0.2)
        if m is not None and not m.error():
            read.append(m)
    assert len(read) >= 20
    cons.commit(offsets=[TopicPartition("g", 0, 20)], asynchronous=False)
    cons.close()
    coordinator = find_coordinator(c.nodes[1].port, "survivors")
    c.nodes[coordinator].kill()
    alive = [n for n in (1, 2, 3) if n != coordinator]
    conf["bootstrap.servers"] = c.bootstrap(alive[0])
    cons = Consumer(conf)
    cons.subscribe(["g"])
    first = None
    deadline = time.monotonic() + TIMEOUT_S
    while first is None and time.monotonic() < deadline:
        m = cons.poll(0.2)
        if m is not None and not m.error():
            first = m.offset()
    cons.close()
    assert first == 20, "resumed at %r, committed 20" % first


def test_controlled_shutdown_under_load(tmp_path):
    """SIGTERM of each node in turn while a producer sends acks=all without pause: the node hands
    its leaderships to in-sync followers before it stops, so not one send fails and every
    acknowledged record is read back at its offset; after the restarts the preferred leaders
    lead again (auto.leader.rebalance.enable). Catches: a shutdown that drops leaderships
    (clients time out or see errors), hand-overs that lose in-flight acknowledged records,
    preferred leaders never restored."""
    c = Cluster(tmp_path, 3, extra_args=FAST_ISR + [
        "--set", "leader.imbalance.check.interval.seconds=1"]).start()
    try:
        create_topic(c, "cs", 4, {"min.insync.replicas": "2"})
        for p in range(4):
            wait_leader(c, "cs", p, [1, 2, 3])
        acked, errors = {}, []

        def report(err, msg):
            if err is None:
                acked[msg.value().decode()] = (msg.partition(), msg.offset())
            else:
                errors.append(err)

        prod = Producer({"bootstrap.servers": ",".join(c.bootstrap(n) for n in (1, 2, 3)),
                         "acks": "all", "linger.ms": 2, "message.timeout.ms": 60000})
        sent = 0

        def send_for(seconds):
            nonlocal sent
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                prod.produce("cs", ("v%d" % sent).encode(), partition=sent % 4,
                             on_delivery=report)
                sent += 1
                prod.poll(0.001)

        send_for(1)
        for n in (1, 2, 3):
            t0 = time.monotonic()
            c.nodes[n].stop()  # SIGTERM; fails unless it exits 0
            assert time.monotonic() - t0 < 10, "node %d took %.1f s to stop" % (
                n, time.monotonic() - t0)
            send_for(1)
            c.nodes[n].launch()
            c.wait_serving([n])
            for p in range(4):
                wait_until(lambda: partition_state(c, (n % 3) + 1, "cs", p)[1] == [1, 2, 3],
                           TIMEOUT_S, "cs-%d back to three in-sync replicas" % p)
            send_for(1)
        assert prod.flush(60) == 0
        assert not errors, "failed sends: %s" % errors[:5]
        assert len(acked) == sent
        for p in range(4):
            want = {off: v for v, (part, off) in acked.items() if part == p}
            got = consume_all(c.bootstrap(1), "cs", p, len(want))
            for off, v in want.items():
                assert got.get(off) == v, "acknowledged %s at %s-%d, read %r" % (
                    v, p, off, got.get(off))
        # Preferred leaders (the first replica) lead again.
        md = c.metadata(1, "cs")
        preferred = {p: md.topics["cs"].partitions[p].replicas[0] for p in range(4)}
        for p in range(4):
            wait_until(lambda: partition_state(c, 1, "cs", p)[0] == preferred[p], TIMEOUT_S,
                       "cs-%d led by its preferred replica %d" % (p, preferred[p]))
    finally:
        c.stop()


def fetch_answer(payload, correlation_id):
    """(error_code, high_watermark) of a Fetch v4 answer for one topic and partition."""
    assert struct.unpack(">i", payload[:4])[0] == correlation_id
    off = 12
    off += 2 + struct.unpack(">h", payload[off:off + 2])[0]
    off += 4
    _, error_code, high = struct.unpack(">ihq", payload[off:off + 14])
    return error_code, high


def test_stalled_leader_never_answers_a_stale_high_watermark(cluster):
    """A fetch parked on a leader that is then stopped (SIGSTOP) for longer than an election
    timeout, while another leader is elected and commits more, is not answered with the old
    leader's high watermark when it resumes: the client already saw the new leader's higher
    one, and the high watermark a client sees must never go back. Caught by the chaos harness
    (seed 7, 60 faults: "c1 saw p2 high watermark 33919 after 34077"). Catches: a stalled
    process serving with Raft timers that did not see the time pass, parked fetches answered
    without looking at leadership again."""
    c = cluster
    create_topic(c, "st", 1, {"min.insync.replicas": "2"})
    leader = wait_leader(c, "st", 0, [1, 2, 3])
    first, errors = produce(c.bootstrap(leader), "st", ["s%d" % i for i in range(50)])
    assert not errors
    end = max(first.values()) + 1
    # A fetch that waits up to 1.5 s for data; the leader stops while it waits, so when it
    # resumes its wait is over and it answers at once, before it hears of the new leader.
    parked = kw.send(c.nodes[leader].port, kw.fetch_v4(21, "st", 0, end, 1500))
    sent = time.monotonic()
    time.sleep(0.2)  # the fetch reaches the leader and parks there (nothing to observe)
    os.kill(c.nodes[leader].proc.pid, signal.SIGSTOP)
    try:
        others = [n for n in (1, 2, 3) if n != leader]
        second, errors = produce(",".join(c.bootstrap(n) for n in others), "st",
                                 ["t%d" % i for i in range(50)])
        assert not errors
        new_leader = wait_leader(c, "st", 0, others)
        kind, payload = kw.exchange(c.nodes[new_leader].port, kw.fetch_v4(22, "st", 0, 0, 0))
        assert kind == "response"
        err, newer = fetch_answer(payload, 22)
        assert err == 0 and newer > end
        time.sleep(max(0.0, sent + 2.0 - time.monotonic()))  # its wait is over by now
    finally:
        os.kill(c.nodes[leader].proc.pid, signal.SIGCONT)
    kind, payload = kw.receive(parked)
    parked.close()
    assert kind == "response"
    err, high = fetch_answer(payload, 21)
    assert err == NOT_LEADER_OR_FOLLOWER or high >= newer, (
        "the resumed old leader answered high watermark %d after the new leader's %d" % (
            high, newer))
