"""Consumer groups with kafka-python 2.0.2 (Debian's python3-kafka) against chronik.

kafka-python speaks the older group versions (JoinGroup v2, SyncGroup v1, Heartbeat v1,
OffsetCommit v2, OffsetFetch v1). Each member is a process running
groups_common.kafka_python_member(): a KafkaConsumer in a group that commits each record right
after reading it and reports what it was assigned, read and committed. Covers three members
sharing six partitions (every record read, none more often than the commits allow), a member
leaving cleanly (its partitions move), a member killed with SIGKILL (its partitions move after
its session timeout), members riding through a broker restart (resuming from the committed
offsets), and KafkaAdminClient's list, describe and delete of groups and its offset listing.

Not covered here, because kafka-python 2.0.2 lacks the client feature: static membership
(KIP-345; its KafkaConsumer has no group_instance_id) and the cooperative-sticky assignor
(KIP-429; it only rebalances eagerly). test_groups_clients.py covers both with librdkafka.
"""

import json
import os
import sys
import time

import pytest
from kafka.admin import KafkaAdminClient

from groups_common import (BROKER_ARGS, PARTITIONS, SESSION_MS, Ledger, Member, create_topic,
                           produce, settled, unique, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
MEMBER_MAIN = "import groups_common; groups_common.kafka_python_member()"
# Members that must ride through a broker restart get a session that outlasts the restart and
# the client's reconnect back-off, so the restart alone never expires them.
RESTART_SESSION_MS = 10000


@pytest.fixture
def gbroker(make_broker):
    return make_broker(BROKER_ARGS).start()


@pytest.fixture
def members():
    made = []
    yield made
    for m in made:
        m.reap()


def start(members, n, broker, topic, group, ledger, session_ms=SESSION_MS):
    cmd = json.dumps({"bootstrap": broker.bootstrap, "topic": topic, "group": group,
                      "sessionTimeout": session_ms})
    for _ in range(n):
        members.append(Member("m%d" % len(members), [sys.executable, "-c", MEMBER_MAIN, cmd],
                              b"", ledger, cwd=HERE))
    return members[-n:]


def committed(broker, group):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        offsets = admin.list_consumer_group_offsets(group)
        return {tp.partition: om.offset for tp, om in offsets.items()}
    finally:
        admin.close()


def test_kafka_python_three_members_read_each_record_once(gbroker, topic, members):
    create_topic(gbroker, topic)
    produce(gbroker, topic, 0, 600)
    group = unique("kp3")
    ledger = Ledger()
    ms = start(members, 3, gbroker, topic, group, ledger)
    wait_for(lambda: ledger.count() == 600 and settled(ms, 2), what="600 records")
    ledger.check(600)
    assert committed(gbroker, group) == {p: 100 for p in range(PARTITIONS)}
    for m in ms:
        m.stop()


def test_kafka_python_member_leaves_cleanly(gbroker, topic, members):
    create_topic(gbroker, topic)
    produce(gbroker, topic, 0, 300)
    group = unique("kpleave")
    ledger = Ledger()
    ms = start(members, 3, gbroker, topic, group, ledger)
    wait_for(lambda: ledger.count() == 300 and settled(ms, 2), what="first 300 records")
    ms[2].stop()
    rest = ms[:2]
    wait_for(lambda: settled(rest, 3), what="the two left to share six partitions")
    produce(gbroker, topic, 300, 300)
    wait_for(lambda: ledger.count() == 600, what="second 300 records")
    ledger.check(600)
    for m in rest:
        m.stop()


def test_kafka_python_member_sigkill_expires_after_session(gbroker, topic, members):
    create_topic(gbroker, topic)
    group = unique("kpkill")
    ledger = Ledger()
    ms = start(members, 3, gbroker, topic, group, ledger)
    wait_for(lambda: settled(ms, 2), what="three members to settle")
    ms[2].kill()
    killed_at = time.monotonic()
    rest = ms[:2]
    wait_for(lambda: settled(rest, 3), what="the survivors to take over")
    assert time.monotonic() - killed_at >= SESSION_MS / 1000.0 - 1.0
    produce(gbroker, topic, 0, 120)
    wait_for(lambda: ledger.count() == 120, what="records after the kill")
    ledger.check(120)
    for m in rest:
        m.stop()


def test_kafka_python_members_resume_after_broker_restart(make_broker, topic, members):
    b = make_broker(BROKER_ARGS).start()
    create_topic(b, topic)
    produce(b, topic, 0, 120)
    group = unique("kprestart")
    ledger = Ledger()
    ms = start(members, 2, b, topic, group, ledger, session_ms=RESTART_SESSION_MS)
    wait_for(lambda: ledger.count() == 120 and settled(ms, 3), what="records before restart")
    wait_for(lambda: sum(ledger.committed_max().values()) == 120, what="commits before restart")
    b.stop()
    b.start()
    produce(b, topic, 120, 120)
    wait_for(lambda: ledger.count() == 240, what="records after restart")
    # Nothing before the last commit came again: the members resumed from committed offsets.
    ledger.check(240)
    wait_for(lambda: ledger.committed_max() == {p: 40 for p in range(PARTITIONS)},
             what="commits after restart")
    for m in ms:
        m.stop()
    assert committed(b, group) == {p: 40 for p in range(PARTITIONS)}


def test_kafka_python_admin_groups(gbroker, topic, members):
    create_topic(gbroker, topic)
    produce(gbroker, topic, 0, 60)
    group = unique("kpadmin")
    ledger = Ledger()
    (m,) = start(members, 1, gbroker, topic, group, ledger)
    wait_for(lambda: sum(ledger.committed_max().values()) == 60, what="60 commits")
    admin = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap)
    try:
        assert dict(admin.list_consumer_groups()).get(group) == "consumer"
        desc = admin.describe_consumer_groups([group])[0]
        assert (desc.group, desc.state, desc.protocol_type) == (group, "Stable", "consumer")
        assert desc.protocol == "range"
        assert len(desc.members) == 1
        assert committed(gbroker, group) == {p: 10 for p in range(PARTITIONS)}
        # A group with a member cannot be deleted; an empty one can, offsets and all.
        assert dict(admin.delete_consumer_groups([group]))[group].errno == 68  # NON_EMPTY_GROUP
        m.stop()
        assert admin.describe_consumer_groups([group])[0].state == "Empty"
        assert dict(admin.delete_consumer_groups([group]))[group].errno == 0
        assert group not in dict(admin.list_consumer_groups())
        assert admin.describe_consumer_groups([group])[0].state == "Dead"
    finally:
        admin.close()
    assert committed(gbroker, group) == {}
