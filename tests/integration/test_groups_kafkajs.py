"""Consumer groups with kafkajs 2.2.4's own consumer and admin client against chronik.

Each member is a node process running kafkajs_driver.js's 'group-consume' command: a kafkajs
consumer in a group that commits each record right after reading it and reports what it was
assigned, read and committed. Covers three members sharing six partitions (every record read,
none more often than the commits allow), a member leaving cleanly (its partitions move), a
member killed with SIGKILL (its partitions move after its session timeout), members riding
through a broker restart (resuming from the committed offsets), and the admin calls listGroups,
describeGroups, deleteGroups and fetchOffsets.

Not covered here, because kafkajs lacks the client feature: static membership (KIP-345; kafkajs
has no groupInstanceId) and the cooperative-sticky assignor (KIP-429; kafkajs only rebalances
eagerly). test_groups_clients.py covers both with librdkafka.
"""

import json
import os
import subprocess

import pytest

from groups_common import (BROKER_ARGS, PARTITIONS, SESSION_MS, TIMEOUT_S, Ledger, Member,
                           create_topic, produce, scenario_member_leaves_cleanly,
                           scenario_member_sigkill_expires_after_session,
                           scenario_members_resume_after_broker_restart,
                           scenario_read_each_record_once, unique, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "kafkajs_driver.js")


@pytest.fixture
def gbroker(make_broker):
    return make_broker(BROKER_ARGS).start()


def driver(broker, **cmd):
    proc = subprocess.run(["node", DRIVER, broker.bootstrap], input=json.dumps(cmd).encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_S,
                          cwd=HERE)
    assert proc.returncode == 0, "node failed (%d): %s" % (proc.returncode, proc.stderr.decode())
    out = json.loads(proc.stdout)
    assert "error" not in out, "kafkajs %s: %s" % (cmd["op"], out)
    return out["result"]


def member(name, broker, topic, group, ledger, session_ms):
    cmd = {"op": "group-consume", "topic": topic, "group": group, "sessionTimeout": session_ms}
    return Member(name, ["node", DRIVER, broker.bootstrap], json.dumps(cmd).encode(), ledger,
                  cwd=HERE)


@pytest.fixture
def members():
    made = []
    yield made
    for m in made:
        m.reap()


def start(members, n, broker, topic, group, ledger, session_ms=SESSION_MS):
    for _ in range(n):
        members.append(member("m%d" % len(members), broker, topic, group, ledger, session_ms))
    return members[-n:]


def committed(broker, group, topic):
    offsets = driver(broker, op="offsets-fetch", group=group, topic=topic)
    return {o["partition"]: o["offset"] for o in offsets}


def test_kafkajs_three_members_read_each_record_once(gbroker, topic, members):
    scenario_read_each_record_once(start, lambda b, g: committed(b, g, topic), gbroker, topic,
                                   members, "js")


def test_kafkajs_member_leaves_cleanly(gbroker, topic, members):
    scenario_member_leaves_cleanly(start, gbroker, topic, members, "js")


def test_kafkajs_member_sigkill_expires_after_session(gbroker, topic, members):
    scenario_member_sigkill_expires_after_session(start, gbroker, topic, members, "js")


def test_kafkajs_members_resume_after_broker_restart(make_broker, topic, members):
    scenario_members_resume_after_broker_restart(start, lambda b, g: committed(b, g, topic),
                                                 make_broker, topic, members, "js")


def test_kafkajs_admin_groups(gbroker, topic, members):
    create_topic(gbroker, topic)
    produce(gbroker, topic, 0, 60)
    group = unique("jsadmin")
    ledger = Ledger()
    (m,) = start(members, 1, gbroker, topic, group, ledger)
    wait_for(lambda: ledger.count() == 60 and m.assigned is not None, what="60 records")
    wait_for(lambda: sum(ledger.committed_max().values()) == 60, what="commits")
    listed = {g["groupId"]: g["protocolType"] for g in driver(gbroker, op="groups-list")}
    assert listed.get(group) == "consumer"
    (desc,) = driver(gbroker, op="groups-describe", groups=[group])
    assert (desc["groupId"], desc["state"], desc["protocolType"]) == (group, "Stable", "consumer")
    assert len(desc["members"]) == 1
    offsets = driver(gbroker, op="offsets-fetch", group=group, topic=topic)
    assert {o["partition"]: o["offset"] for o in offsets} == {p: 10 for p in range(PARTITIONS)}
    # A group with a member cannot be deleted; an empty one can, offsets and all.
    (res,) = driver(gbroker, op="groups-delete", groups=[group])
    assert res["errorCode"] == 68, res  # NON_EMPTY_GROUP
    m.stop()
    (desc,) = driver(gbroker, op="groups-describe", groups=[group])
    assert desc["state"] == "Empty", desc
    (res,) = driver(gbroker, op="groups-delete", groups=[group])
    assert res == {"groupId": group, "errorCode": 0}, res
    assert group not in {g["groupId"] for g in driver(gbroker, op="groups-list")}
    (desc,) = driver(gbroker, op="groups-describe", groups=[group])
    assert desc["state"] == "Dead", desc
    offsets = driver(gbroker, op="offsets-fetch", group=group, topic=topic)
    assert {o["partition"]: o["offset"] for o in offsets} == {p: -1 for p in range(PARTITIONS)}
