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

import pytest
from kafka.admin import KafkaAdminClient

from groups_common import (BROKER_ARGS, PARTITIONS, SESSION_MS, Ledger, Member, create_topic,
                           produce, scenario_member_leaves_cleanly,
                           scenario_member_sigkill_expires_after_session,
                           scenario_members_resume_after_broker_restart,
                           scenario_read_each_record_once, unique, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
MEMBER_MAIN = "import groups_common; groups_common.kafka_python_member()"


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
    scenario_read_each_record_once(start, committed, gbroker, topic, members, "kp")


def test_kafka_python_member_leaves_cleanly(gbroker, topic, members):
    scenario_member_leaves_cleanly(start, gbroker, topic, members, "kp")


def test_kafka_python_member_sigkill_expires_after_session(gbroker, topic, members):
    scenario_member_sigkill_expires_after_session(start, gbroker, topic, members, "kp")


def test_kafka_python_members_resume_after_broker_restart(make_broker, topic, members):
    scenario_members_resume_after_broker_restart(start, committed, make_broker, topic, members,
                                                 "kp")


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
