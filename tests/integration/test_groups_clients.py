"""Consumer groups against chronik with real clients (librdkafka through confluent-kafka, and
kafka-python's admin client).

Covers three consumers sharing six partitions (each record read once, commits visible),
a member leaving (its partitions move), a member killed with SIGKILL (its partitions move after
its session timeout), broker restarts after SIGTERM and SIGKILL (committed offsets survive and
consumption resumes after them), a static member restarting without a rebalance (KIP-345),
cooperative-sticky incremental rebalancing (KIP-429), and the admin calls that list, describe
and delete groups and their offsets. Each test has its own broker, topic and group.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.admin import KafkaAdminClient

TIMEOUT_S = 60
PARTITIONS = 6
# Short sessions keep the tests quick; 6 s is the broker's group.min.session.timeout.ms.
SESSION_MS = 6000


def create_topic(broker, topic, partitions=PARTITIONS):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                              operation_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)


def produce(broker, topic, count, partitions=PARTITIONS):
    """count records spread evenly over the partitions; values are "<index>"."""
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(count):
        p.produce(topic, value=str(i).encode(), partition=i % partitions)
    assert p.flush(TIMEOUT_S) == 0


def consumer(broker, group, **extra):
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": 500,
    }
    conf.update(extra)
    return ck.Consumer(conf)


def poll_until(consumers, done, timeout_s=TIMEOUT_S, on_message=None):
    """Polls every consumer in turn until done() or the timeout; returns done()."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for i, c in enumerate(consumers):
            m = c.poll(0.05)
            if m is not None and m.error() is None and on_message is not None:
                on_message(i, c, m)
        if done():
            return True
    return done()


def close_all(consumers):
    for c in consumers:
        c.close()


def partitions_of(c):
    return sorted(tp.partition for tp in c.assignment())


def committed(broker, group, topic, partitions=PARTITIONS):
    c = consumer(broker, group)
    try:
        tps = c.committed([ck.TopicPartition(topic, p) for p in range(partitions)],
                          timeout=TIMEOUT_S)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def test_three_consumers_share_six_partitions(broker, topic):
    create_topic(broker, topic)
    produce(broker, topic, 600)
    group = unique("g3")
    cs = [consumer(broker, group) for _ in range(3)]
    for c in cs:
        c.subscribe([topic])
    seen = {}

    def record(i, c, m):
        assert m.value() not in seen, "record %r delivered twice" % m.value()
        seen[m.value()] = i
        c.commit(message=m, asynchronous=False)

    assert poll_until(cs, lambda: len(seen) == 600, on_message=record), len(seen)
    owned = [partitions_of(c) for c in cs]
    assert sorted(p for ps in owned for p in ps) == list(range(PARTITIONS))
    assert all(len(ps) == 2 for ps in owned), owned
    # Each consumer read exactly the records of its own partitions.
    for value, i in seen.items():
        assert int(value) % PARTITIONS in owned[i]
    assert committed(broker, group, topic) == {p: 100 for p in range(PARTITIONS)}
    close_all(cs)


def test_member_leave_moves_partitions(broker, topic):
    create_topic(broker, topic)
    group = unique("leave")
    cs = [consumer(broker, group) for _ in range(3)]
    for c in cs:
        c.subscribe([topic])
    assert poll_until(cs, lambda: all(len(c.assignment()) == 2 for c in cs))
    cs[2].close()  # sends LeaveGroup
    rest = cs[:2]
    assert poll_until(rest, lambda: sorted(p for c in rest for p in partitions_of(c)) ==
                      list(range(PARTITIONS)) and all(len(c.assignment()) == 3 for c in rest))
    close_all(rest)


CHILD = r"""
import sys, time, confluent_kafka as ck
c = ck.Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                 "session.timeout.ms": %d, "heartbeat.interval.ms": 500,
                 "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([sys.argv[3]])
while True:
    c.poll(0.1)
    if c.assignment():
        print("assigned", flush=True)
""" % SESSION_MS


def test_member_sigkill_expires_after_session(broker, topic):
    create_topic(broker, topic)
    group = unique("kill")
    child = subprocess.Popen([sys.executable, "-c", CHILD, broker.bootstrap, group, topic],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        cs = [consumer(broker, group) for _ in range(2)]
        for c in cs:
            c.subscribe([topic])
        assert poll_until(cs, lambda: all(len(c.assignment()) == 2 for c in cs)), \
            [partitions_of(c) for c in cs]
        child.send_signal(signal.SIGKILL)
        child.wait()
        killed_at = time.monotonic()
        # Nobody tells the broker: the member expires after its session timeout and the two
        # survivors share all six partitions.
        assert poll_until(cs, lambda: all(len(c.assignment()) == 3 for c in cs))
        assert time.monotonic() - killed_at >= SESSION_MS / 1000.0 - 1.0
        close_all(cs)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def consume_and_commit(b, topic, group, count):
    c = consumer(b, group)
    c.subscribe([topic])
    got = []

    def record(i, cc, m):
        got.append(int(m.value()))

    assert poll_until([c], lambda: len(got) >= count, on_message=record), len(got)
    c.commit(asynchronous=False)
    close_all([c])
    return got


def test_offsets_survive_broker_restart(make_broker, topic):
    b = make_broker().start()
    create_topic(b, topic, partitions=2)
    produce(b, topic, 100, partitions=2)
    group = unique("restart")
    first = consume_and_commit(b, topic, group, 100)
    assert sorted(first) == list(range(100))
    before = committed(b, group, topic, partitions=2)
    assert before == {0: 50, 1: 50}
    b.stop()
    b.start()
    assert committed(b, group, topic, partitions=2) == before
    # A crash after the commit was acknowledged loses nothing either.
    produce(b, topic, 10, partitions=2)
    c = consumer(b, group)
    c.subscribe([topic])
    got = []
    assert poll_until([c], lambda: len(got) >= 10,
                      on_message=lambda i, cc, m: got.append(int(m.value())))
    assert sorted(got) == list(range(10))  # nothing before the committed offsets again
    c.commit(asynchronous=False)
    close_all([c])
    b.kill()
    b.start()
    assert committed(b, group, topic, partitions=2) == {0: 55, 1: 55}
    b.stop()


def test_static_member_restart_keeps_assignment(broker, topic):
    create_topic(broker, topic)
    group = unique("static")
    events = {"a": [], "b": []}

    def static(name):
        c = consumer(broker, group, **{"group.instance.id": "instance-" + name,
                                       "session.timeout.ms": 10000})
        c.subscribe([topic],
                    on_assign=lambda cc, ps: events[name].append(("assign", len(ps))),
                    on_revoke=lambda cc, ps: events[name].append(("revoke", len(ps))))
        return c

    a, b = static("a"), static("b")
    assert poll_until([a, b], lambda: len(a.assignment()) == 3 and len(b.assignment()) == 3)
    b_parts = partitions_of(b)
    a_events = list(events["a"])
    # A static member's close sends no LeaveGroup (KIP-345): the group keeps its place.
    b.close()
    b2 = static("b")
    assert poll_until([a, b2], lambda: len(b2.assignment()) == 3)
    assert partitions_of(b2) == b_parts
    # Member a saw no rebalance: no revocation, no new assignment.
    poll_until([a, b2], lambda: False, timeout_s=2)
    assert events["a"] == a_events, events["a"]
    close_all([a, b2])


def test_cooperative_sticky_incremental_rebalance(broker, topic):
    create_topic(broker, topic)
    group = unique("coop")
    revoked = {0: [], 1: [], 2: []}

    def coop(i):
        c = consumer(broker, group, **{"partition.assignment.strategy": "cooperative-sticky"})
        c.subscribe([topic], on_revoke=lambda cc, ps: revoked[i].append(len(ps)))
        return c

    cs = [coop(0), coop(1)]
    assert poll_until(cs, lambda: all(len(c.assignment()) == 3 for c in cs))
    kept = [set(partitions_of(c)) for c in cs]
    cs.append(coop(2))
    assert poll_until(cs, lambda: all(len(c.assignment()) == 2 for c in cs))
    # Incremental: the first two each gave up only what moved and kept the rest.
    for i in range(2):
        assert set(partitions_of(cs[i])) <= kept[i]
        assert all(n < 3 for n in revoked[i]), revoked[i]
    assert sorted(p for c in cs for p in partitions_of(c)) == list(range(PARTITIONS))
    close_all(cs)


def test_admin_list_describe_delete(broker, topic):
    create_topic(broker, topic)
    produce(broker, topic, 60)
    group = unique("admin")
    c = consumer(broker, group)
    c.subscribe([topic])
    got = []
    assert poll_until([c], lambda: len(got) == 60,
                      on_message=lambda i, cc, m: got.append(m))
    c.commit(asynchronous=False)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        listed = dict(admin.list_consumer_groups())
        assert listed.get(group) == "consumer"
        desc = admin.describe_consumer_groups([group])[0]
        assert desc.state == "Stable"
        assert desc.protocol_type == "consumer"
        assert len(desc.members) == 1
        offsets = admin.list_consumer_group_offsets(group)
        assert {tp.partition: om.offset for tp, om in offsets.items()} == \
            {p: 10 for p in range(PARTITIONS)}
        # A group with a member cannot be deleted; an empty one can, offsets and all.
        errors = dict(admin.delete_consumer_groups([group]))
        assert errors[group].errno == 68, errors  # NON_EMPTY_GROUP
        close_all([c])
        deadline = time.monotonic() + TIMEOUT_S
        while admin.describe_consumer_groups([group])[0].state != "Empty":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        errors = dict(admin.delete_consumer_groups([group]))
        assert errors[group].errno == 0, errors
        assert group not in dict(admin.list_consumer_groups())
        assert admin.describe_consumer_groups([group])[0].state == "Dead"
    finally:
        admin.close()
    assert committed(broker, group, topic) == {p: ck.OFFSET_INVALID for p in range(PARTITIONS)}


def test_kafka_python_group(broker, topic):
    """kafka-python speaks the older versions (JoinGroup v2, OffsetCommit v2, OffsetFetch v1).
    Its poll() blocks while joining, so each consumer polls on a thread of its own."""
    from kafka import KafkaConsumer, TopicPartition

    create_topic(broker, topic, partitions=2)
    produce(broker, topic, 40, partitions=2)
    group = unique("kp")
    got = set()
    lock = threading.Lock()
    stop = threading.Event()
    consumers = [KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                               auto_offset_reset="earliest", enable_auto_commit=False,
                               session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500)
                 for _ in range(2)]

    def run(c):
        while not stop.is_set():
            for recs in c.poll(timeout_ms=100).values():
                with lock:
                    got.update(int(r.value) for r in recs)
            c.commit()

    threads = [threading.Thread(target=run, args=(c,)) for c in consumers]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            with lock:
                done = len(got) == 40
            if done and sorted(len(c.assignment()) for c in consumers) == [1, 1]:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert got == set(range(40))
    assert sorted(len(c.assignment()) for c in consumers) == [1, 1]
    c = consumers[0]
    assert {p: c.committed(TopicPartition(topic, p)) for p in range(2)} == {0: 20, 1: 20}
    for c in consumers:
        c.close()


def test_consumers_ride_through_broker_restart(make_broker, topic):
    """Consumers stay up while the broker restarts: the group is loaded back as it was, and
    consumption continues from the committed offsets without reading anything twice."""
    b = make_broker().start()
    create_topic(b, topic, partitions=2)
    produce(b, topic, 20, partitions=2)
    group = unique("ride")
    cs = [consumer(b, group) for _ in range(2)]
    for c in cs:
        c.subscribe([topic])
    seen = []

    def record(i, c, m):
        seen.append(int(m.value()))
        c.commit(message=m, asynchronous=False)

    assert poll_until(cs, lambda: len(seen) == 20, on_message=record)
    b.stop()
    b.start()
    produce(b, topic, 20, partitions=2)
    assert poll_until(cs, lambda: len(seen) == 40, on_message=record), len(seen)
    assert sorted(seen) == sorted(list(range(20)) * 2)
    assert committed(b, group, topic, partitions=2) == {0: 20, 1: 20}
    close_all(cs)
    b.stop()
