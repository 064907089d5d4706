"""Consumer groups against chronik with librdkafka (through confluent-kafka 1.7.0 on librdkafka
2.0.2), and the group admin calls of kafka-python's and librdkafka's admin clients.

Covers three consumers sharing six partitions (each record read once, commits visible),
a member leaving (its partitions move), a member killed with SIGKILL (its partitions move after
its session timeout), broker restarts after SIGTERM and SIGKILL (committed offsets survive and
consumption resumes after them), consumers riding through a broker restart, a static member
restarting without a rebalance (KIP-345), cooperative-sticky incremental rebalancing (KIP-429),
and the admin calls that list, describe and delete groups and their offsets. Each test has its
own broker, topic and group. test_groups_kafka_python.py and test_groups_kafkajs.py cover the
same ground with the other two clients' own consumers.
"""

import signal
import subprocess
import sys
import time

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient
from kafka.admin import KafkaAdminClient

from groups_common import (BROKER_ARGS, PARTITIONS, SESSION_MS, TIMEOUT_S, Ledger, create_topic,
                           unique)
from groups_common import produce as produce_range


@pytest.fixture
def broker(make_broker):
    """A fresh broker whose groups form after a short initial rebalance delay."""
    return make_broker(BROKER_ARGS).start()


def produce(broker, topic, count, partitions=PARTITIONS):
    """count records spread evenly over the partitions; values are "<index>"."""
    produce_range(broker, topic, 0, count, partitions)


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


def committing(ledger):
    """An on_message that records each delivery in the ledger and commits it at once; a
    commit that fails (the member was cut off by a rebalance or a restart) is allowed, and
    the ledger then allows that record to come again."""

    def record(i, c, m):
        ledger.record("c%d" % i, m.partition(), m.offset(), m.value(), time.time() * 1000.0)
        try:
            c.commit(message=m, asynchronous=False)
        except ck.KafkaException:
            return
        ledger.commit(m.partition(), m.offset() + 1, time.time() * 1000.0)

    return record


def test_three_consumers_share_six_partitions(broker, topic):
    create_topic(broker, topic)
    produce(broker, topic, 600)
    group = unique("g3")
    cs = [consumer(broker, group) for _ in range(3)]
    for c in cs:
        c.subscribe([topic])
    ledger = Ledger()
    assert poll_until(cs, lambda: ledger.count() == 600 and
                      all(len(c.assignment()) == 2 for c in cs),
                      on_message=committing(ledger)), ledger.count()
    owned = [partitions_of(c) for c in cs]
    assert sorted(p for ps in owned for p in ps) == list(range(PARTITIONS))
    # Every record came, and none again after a commit that covered it.
    ledger.check(600)
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
    b = make_broker(BROKER_ARGS).start()
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


def test_consumers_ride_through_broker_restart(make_broker, topic):
    """Consumers stay up while the broker restarts: the group is loaded back as it was, and
    consumption continues from the committed offsets without reading anything twice.

    This test once flaked: with a 6 s session, the broker's restart plus librdkafka's
    exponential reconnect back-off (up to reconnect.backoff.max.ms, 10 s by default) and its
    coordinator query interval sometimes kept a consumer from its coordinator for longer than
    its session. librdkafka then expired the session itself and rejoined, and the commit of a
    record it already held failed with UNKNOWN_MEMBER_ID, which the test took for an error.
    The session now outlasts a restart, reconnects back off at most 500 ms, and a failed commit
    is what Kafka's semantics allow: that record may come again, and the ledger checks nothing
    else does."""
    b = make_broker(BROKER_ARGS).start()
    create_topic(b, topic, partitions=2)
    produce_range(b, topic, 0, 20, partitions=2)
    group = unique("ride")
    cs = [consumer(b, group, **{"session.timeout.ms": 10000, "reconnect.backoff.max.ms": 500})
          for _ in range(2)]
    for c in cs:
        c.subscribe([topic])
    ledger = Ledger(partitions=2)
    assert poll_until(cs, lambda: ledger.count() == 20, on_message=committing(ledger))
    b.stop()
    b.start()
    produce_range(b, topic, 20, 20, partitions=2)
    assert poll_until(cs, lambda: ledger.count() == 40, on_message=committing(ledger)), \
        ledger.count()
    ledger.check(40)
    assert committed(b, group, topic, partitions=2) == {0: 20, 1: 20}
    close_all(cs)
    b.stop()


def test_librdkafka_admin_list_groups(broker, topic):
    """librdkafka's admin API as confluent-kafka 1.7.0 exposes it: list_groups (ListGroups,
    then DescribeGroups). That version has no calls to delete groups or list their offsets;
    offsets are read with Consumer.committed (OffsetFetch) throughout this file."""
    create_topic(broker, topic)
    group = unique("rdadmin")
    c = consumer(broker, group)
    c.subscribe([topic])
    assert poll_until([c], lambda: len(c.assignment()) == PARTITIONS)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert group in {g.id for g in admin.list_groups(timeout=TIMEOUT_S)}
    (g,) = admin.list_groups(group, timeout=TIMEOUT_S)
    assert (g.id, g.state, g.protocol_type, g.protocol) == (group, "Stable", "consumer", "range")
    assert [m.client_id for m in g.members] == ["rdkafka"]
    close_all([c])
    (g,) = admin.list_groups(group, timeout=TIMEOUT_S)
    assert (g.state, g.members) == ("Empty", [])


def test_broker_stops_cleanly_mid_join_and_mid_commit(make_broker, topic):
    """A SIGTERM while JoinGroups wait out the initial rebalance delay, and another while
    asynchronous commits are in flight: the broker answers or drops them and exits with status
    0 (the harness checks it), which under an ASan build also means nothing leaked."""
    b = make_broker(["--set", "group.initial.rebalance.delay.ms=3000"]).start()
    create_topic(b, topic)
    produce(b, topic, 3000)
    parked = [consumer(b, unique("parked")) for _ in range(3)]
    for c in parked:
        c.subscribe([topic])
    assert not poll_until(parked, lambda: any(c.assignment() for c in parked), timeout_s=1.0)
    b.stop()
    b.start()
    cs = [consumer(b, unique("busy")) for _ in range(2)]
    for c in cs:
        c.subscribe([topic])
    got = []

    def record(i, c, m):
        got.append(m.offset())
        c.commit(message=m, asynchronous=True)

    assert poll_until(cs, lambda: len(got) >= 1000, on_message=record)
    b.stop()
    # The consumers close against a live broker once their groups have settled again: closing
    # a librdkafka consumer that has not served its pending rebalance, or whose coordinator is
    # down, can wait for ever.
    b.start()
    everyone = parked + cs
    assert poll_until(everyone, lambda: all(c.assignment() for c in everyone))
    close_all(everyone)
