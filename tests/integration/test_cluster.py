"""A three-node cluster of real processes with real clients (issue 9, "Tests").

Each test starts its own cluster with the documented command line (cluster_harness.py) and
checks what a user of a Kafka cluster relies on: any node answers for the whole cluster, clients
that know one node reach every partition, consumer groups work across nodes, losing the
controller costs a short election and no acknowledged data, and a restart keeps everything.
"""

import base64
import os
import struct
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

import kafka_wire as kw
from cluster_harness import Cluster, serving
from conftest import Broker
from helpers import wait_until

TIMEOUT_S = 30


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path, 3).start()
    yield c
    c.stop()


def create_topic(bootstrap, name, partitions, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})],
                              request_timeout=TIMEOUT_S)
    fut[name].result(timeout=TIMEOUT_S)


def produce(bootstrap, topic, count, tag):
    """Produces count keyed messages with acks=all; returns {value: partition} as acknowledged."""
    acked = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.value().decode()] = msg.partition()

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(count):
        p.produce(topic, key=b"k%d" % i, value=("%s-%d" % (tag, i)).encode(),
                  on_delivery=on_delivery)
    assert p.flush(TIMEOUT_S) == 0
    assert not errors, errors
    return acked


def consume_all(bootstrap, topic, want, group=None, commit=False):
    """Reads topic from the beginning until every value of want is seen; returns {value: part}."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group or "g-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = {}
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not set(want) <= set(got):
            assert time.monotonic() < deadline, "read %d of %d" % (len(got), len(want))
            m = c.poll(0.5)
            if m is None or m.error() is not None:
                continue
            got[m.value().decode()] = m.partition()
        if commit:
            c.commit(asynchronous=False)
    finally:
        c.close()
    return got


def test_topic_created_on_node_2_is_the_same_on_every_node(cluster):
    # Catches: a node answering only for itself (its own topics, itself as the only broker and
    # the controller), metadata that differs between nodes, partitions all placed on one node.
    topic = "t-" + uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    create_topic(cluster.bootstrap(2), topic, 6)
    answered = time.monotonic()
    views = {}
    for i in (1, 2, 3):
        md = cluster.metadata(i, topic)
        t = md.topics[topic]
        assert t.error is None, (i, t.error)
        views[i] = (md.cluster_id, md.controller_id, sorted(md.brokers),
                    {p.id: (p.leader, list(p.replicas), list(p.isrs))
                     for p in t.partitions.values()})
    print("create_topics answered in %.3f s; visible on every node %.3f s after the answer" % (
        answered - t0, time.monotonic() - answered))
    assert views[1] == views[2] == views[3], views
    cluster_id, controller, brokers, parts = views[1]
    assert brokers == [1, 2, 3]
    assert controller in (1, 2, 3)
    assert len(parts) == 6
    leaders = {leader for leader, _, _ in parts.values()}
    assert leaders == {1, 2, 3}, parts  # six partitions spread evenly over three nodes
    for leader, replicas, isrs in parts.values():
        assert replicas == [leader] and isrs == [leader]


def test_replication_factor_beyond_the_brokers_is_refused(cluster):
    # Catches: a factor the cluster cannot honour accepted (and silently under-replicated),
    # and the default factor not following the registered brokers (min(3, brokers)).
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(1)})
    fut = admin.create_topics([NewTopic("rf4", 3, 4)], request_timeout=TIMEOUT_S)
    with pytest.raises(Exception) as e:
        fut["rf4"].result(timeout=TIMEOUT_S)
    assert "INVALID_REPLICATION_FACTOR" in str(e.value) or "Replication factor" in str(e.value)
    assert "only 3 broker(s) are registered" in str(e.value)
    fut = admin.create_topics([NewTopic("rf-default", 2)], request_timeout=TIMEOUT_S)
    fut["rf-default"].result(timeout=TIMEOUT_S)
    md = cluster.metadata(2, "rf-default")
    assert all(len(p.replicas) == 3 for p in md.topics["rf-default"].partitions.values())


def test_clients_knowing_node_1_reach_every_partition(cluster):
    # Catches: produce or fetch sent to a node that does not host the partition being served
    # (or refused without telling the client where the leader is).
    topic = "t-" + uuid.uuid4().hex[:8]
    create_topic(cluster.bootstrap(2), topic, 6)
    acked = produce(cluster.bootstrap(1), topic, 300, "a")
    assert len(acked) == 300 and set(acked.values()) == set(range(6))
    got = consume_all(cluster.bootstrap(1), topic, acked)
    assert {v: got[v] for v in acked} == acked


def test_consumer_group_commits_across_nodes(cluster):
    # Catches: a coordinator that is not the leader of the group's __consumer_offsets
    # partition, offsets committed on one node and lost to another.
    topic = "t-" + uuid.uuid4().hex[:8]
    group = "g-" + uuid.uuid4().hex[:8]
    create_topic(cluster.bootstrap(3), topic, 6)
    acked = produce(cluster.bootstrap(2), topic, 120, "g")
    consume_all(cluster.bootstrap(1), topic, acked, group=group, commit=True)
    # Any node, asked by a new member of the group, gives the same committed offsets.
    for i in (1, 2, 3):
        c = Consumer({"bootstrap.servers": cluster.bootstrap(i), "group.id": group,
                      "enable.auto.commit": False})
        committed = c.committed([TopicPartition(topic, p) for p in range(6)], timeout=TIMEOUT_S)
        c.close()
        counts = {}
        for p in acked.values():
            counts[p] = counts.get(p, 0) + 1
        assert {tp.partition: tp.offset for tp in committed} == \
            {p: counts.get(p, 0) for p in range(6)}, i


def test_kill_9_of_the_controller_elects_another_and_loses_nothing(cluster):
    # Catches: no new controller after the old one dies (or only after seconds), topic creation
    # stuck on a dead controller, a restarted node losing acknowledged data or its partitions.
    topic = "t-" + uuid.uuid4().hex[:8]
    create_topic(cluster.bootstrap(1), topic, 6)
    acked = produce(cluster.bootstrap(1), topic, 200, "before")
    old = cluster.controller(1)
    others = [i for i in (1, 2, 3) if i != old]
    cluster.nodes[old].kill()
    killed = time.monotonic()
    elected = None
    while elected is None:
        for i in others:
            md = cluster.metadata(i)
            if md.controller_id not in (-1, old):
                elected = time.monotonic() - killed
        assert time.monotonic() - killed < TIMEOUT_S, "no new controller"
        time.sleep(0.01)
    print("new controller %.3f s after kill -9 of controller %d" % (elected, old))
    assert elected < 2.0
    create_topic(cluster.bootstrap(others[0]), topic + "-after", 3)
    cluster.nodes[old].start()
    cluster.wait_serving()
    got = consume_all(cluster.bootstrap(others[1]), topic, acked)
    assert {v: got[v] for v in acked} == acked


def test_full_cluster_restart_keeps_topics_configs_and_offsets(cluster):
    # Catches: metadata (topics, configs) or committed offsets that live only in memory, or a
    # cluster that cannot elect a controller again after every node stopped.
    topic = "t-" + uuid.uuid4().hex[:8]
    group = "g-" + uuid.uuid4().hex[:8]
    create_topic(cluster.bootstrap(1), topic, 3, {"retention.ms": "123456789"})
    acked = produce(cluster.bootstrap(2), topic, 90, "r")
    consume_all(cluster.bootstrap(3), topic, acked, group=group, commit=True)
    cluster.stop()
    cluster.start()
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(2)})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([res])[res].result(timeout=TIMEOUT_S)
    assert configs["retention.ms"].value == "123456789"
    c = Consumer({"bootstrap.servers": cluster.bootstrap(1), "group.id": group,
                  "enable.auto.commit": False})
    committed = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=TIMEOUT_S)
    c.close()
    assert sum(tp.offset for tp in committed) == 90
    got = consume_all(cluster.bootstrap(3), topic, acked)
    assert {v: got[v] for v in acked} == acked


def describe_broker_config(port, broker):
    """(error code, {name: value}) of DescribeConfigs v1 for BROKER resource `broker`."""
    body = kw.i32(1) + bytes([4]) + kw.string(broker) + kw.i32(-1) + bytes([0])
    kind, payload = kw.exchange(port, kw.frame(kw.header(32, 1, 5) + body))
    assert kind == "response"
    corr, _, count, error = struct.unpack(">iiih", payload[:14])
    assert (corr, count) == (5, 1)
    at = 14
    n = struct.unpack(">h", payload[at:at + 2])[0]  # error message
    at += 2 + max(n, 0) + 1  # resource type
    at += 2 + struct.unpack(">h", payload[at:at + 2])[0]  # resource name
    count = struct.unpack(">i", payload[at:at + 4])[0]
    at += 4
    configs = {}
    for _ in range(max(count, 0)):
        fields = []
        for _ in range(2):  # name, value
            n = struct.unpack(">h", payload[at:at + 2])[0]
            fields.append(payload[at + 2:at + 2 + n].decode() if n >= 0 else None)
            at += 2 + max(n, 0)
        at += 3  # read only, source, sensitive
        assert struct.unpack(">i", payload[at:at + 4])[0] == 0  # synonyms: none asked
        at += 4
        configs[fields[0]] = fields[1]
    return error, configs


def test_broker_config_is_described_by_its_own_node_only(cluster):
    """DescribeConfigs of a broker answers with that node's configuration on that node, and
    INVALID_REQUEST on another (as Kafka, whose admin clients send it to the broker named).
    Catches: node 1 answering for broker 2 with its own configuration (node.id 1, its own
    listeners and dynamic values) under broker 2's name."""
    c = cluster
    for node in (1, 2):
        error, configs = describe_broker_config(c.nodes[node].port, str(node))
        assert error == 0 and configs["node.id"] == str(node), (node, error)
    error, configs = describe_broker_config(c.nodes[1].port, "2")
    assert (error, configs) == (42, {})  # INVALID_REQUEST, nothing described


def test_kafka_python_and_kafkajs_reach_every_partition(cluster):
    # Catches: a client other than librdkafka stuck on a node that does not lead a partition
    # (kafka-python and kafkajs follow Metadata's leaders and NOT_LEADER_OR_FOLLOWER alike).
    from kafka import KafkaConsumer, KafkaProducer
    from test_kafkajs import ok

    topic = "t-" + uuid.uuid4().hex[:8]
    create_topic(cluster.bootstrap(2), topic, 3)
    # kafkajs, knowing only node 1, produces to every partition and reads each back.
    for p in range(3):
        values = [base64.b64encode(b"js-%d-%d" % (p, i)).decode() for i in range(5)]
        res = ok(cluster.nodes[1], op="produce", topic=topic, partition=p, codec="none",
                 messages=[{"key": None, "value": v, "headers": [], "ts": None} for v in values])
        assert res[0]["errorCode"] == 0 and res[0]["baseOffset"] == 0, res
    # kafka-python, knowing only node 2, produces more; knowing only node 3, reads everything.
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap(2), acks="all")
    for i in range(30):
        producer.send(topic, key=b"py%d" % i, value=b"py-%d" % i).get(timeout=TIMEOUT_S)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=cluster.bootstrap(3),
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    seen = set()
    deadline = time.monotonic() + TIMEOUT_S
    while len(seen) < 45 and time.monotonic() < deadline:
        for m in consumer:
            seen.add(m.value.decode())
    consumer.close()
    want = {"js-%d-%d" % (p, i) for p in range(3) for i in range(5)} | {
        "py-%d" % i for i in range(30)}
    assert seen == want


def test_observer_learns_the_metadata_and_hosts_partitions(tmp_path):
    # Catches: a node outside controller.quorum.voters that never learns the cluster id or the
    # metadata (nobody replicates to it), is never offered partitions, or loses them on restart.
    c = Cluster(tmp_path, 3, observers=1).start()
    try:
        topic = "t-" + uuid.uuid4().hex[:8]
        create_topic(c.bootstrap(4), topic, 8)
        md = c.metadata(4, topic)
        assert sorted(md.brokers) == [1, 2, 3, 4]
        assert md.controller_id in (1, 2, 3)
        leaders = [p.leader for p in md.topics[topic].partitions.values()]
        assert sorted(set(leaders)) == [1, 2, 3, 4], leaders
        acked = produce(c.bootstrap(4), topic, 160, "o")
        assert set(acked.values()) == set(range(8))
        c.nodes[4].kill()
        c.nodes[4].start()
        c.wait_serving([4])
        got = consume_all(c.bootstrap(4), topic, acked)
        assert {v: got[v] for v in acked} == acked
    finally:
        c.stop()


def test_observer_follows_a_new_controller(tmp_path):
    # Catches: an observer that keeps fetching the metadata from a controller killed -9 (it
    # asked that node for good): its image went stale (a dead controller named, new topics
    # never seen), its heartbeats never reached the new controller, which fenced it, and the
    # partitions it led went leaderless on the voters although it was running.
    session_ms = 3000
    c = Cluster(tmp_path, 3, observers=1, extra_args=[
        "--set", "broker.heartbeat.interval.ms=500",
        "--set", "broker.session.timeout.ms=%d" % session_ms]).start()
    try:
        controller = c.controller(4)
        assert controller in (1, 2, 3)
        c.nodes[controller].kill()
        voters = [n for n in (1, 2, 3) if n != controller]
        new = wait_until(lambda: c.controller(voters[0]) if c.controller(voters[0]) in voters
                         else None, TIMEOUT_S, "a new controller")
        wait_until(lambda: c.controller(4) == new, TIMEOUT_S,
                   "the observer naming controller %d" % new)
        topic = "t-" + uuid.uuid4().hex[:8]
        create_topic(c.bootstrap(voters[0]), topic, 4)
        wait_until(lambda: topic in c.metadata(4, topic).topics and
                   len(c.metadata(4, topic).topics[topic].partitions) == 4, TIMEOUT_S,
                   "the observer seeing %s" % topic)
        # Its heartbeats reach the new controller: still a broker two sessions later.
        end = time.monotonic() + 2 * session_ms / 1000
        while time.monotonic() < end:
            assert 4 in c.metadata(new).brokers, "the observer was fenced"
            time.sleep(0.1)
    finally:
        c.stop()


def test_standalone_directory_becomes_the_first_voter(tmp_path):
    # Catches: a single node's data (topics, records, its cluster id) lost or forked when it
    # becomes node 1 of a cluster, or new nodes inventing their own cluster id.
    c = Cluster(tmp_path, 3)
    n1 = c.nodes[1]
    alone = Broker(n1.data_dir)
    alone.port, alone.http_port, alone.cluster_port = n1.port, n1.http_port, n1.cluster_port
    alone.extra_args = ["--node-id", "1"]
    alone.start()
    topic = "t-" + uuid.uuid4().hex[:8]
    create_topic(alone.bootstrap, topic, 4)
    acked = produce(alone.bootstrap, topic, 40, "s")
    cluster_id = AdminClient({"bootstrap.servers": alone.bootstrap}).list_topics(
        timeout=TIMEOUT_S).cluster_id
    alone.stop()
    c.start()
    try:
        for i in (1, 2, 3):
            md = c.metadata(i, topic)
            assert md.cluster_id == cluster_id
            assert len(md.topics[topic].partitions) == 4
        got = consume_all(c.bootstrap(3), topic, acked)
        assert {v: got[v] for v in acked} == acked
    finally:
        c.stop()


def test_node_of_another_cluster_is_refused(tmp_path):
    # Catches: a node whose data directory belongs to another cluster joining (and mixing two
    # clusters' metadata), or being refused without saying why and what to do.
    other = Cluster(tmp_path / "other", 3).start()
    other.stop()
    c = Cluster(tmp_path / "main", 3)
    stranger = c.nodes[3]
    # Node 3 of the main cluster is started over the other cluster's node-3 directory.
    stranger.data_dir = other.nodes[3].data_dir
    for b in c.nodes.values():
        b.launch()
    try:
        c.nodes[1].wait_started()
        c.nodes[2].wait_started()
        deadline = time.monotonic() + TIMEOUT_S
        while "belongs to cluster" not in stranger.stderr_text():
            assert time.monotonic() < deadline, stranger.stderr_text()
            time.sleep(0.05)
        text = stranger.stderr_text()
        assert "another cluster's data directory; give it its own, or a new one" in text, text
        assert not serving(stranger.port)
    finally:
        c.stop()


def test_new_voter_does_not_take_the_id_of_a_standalone_broker_on_a_voters_address(tmp_path):
    # Catches: a new voter learning its cluster id from whatever answers at the first voter's
    # address. A standalone broker left running there (scripts/start's, on node 1's ports)
    # admitted node 2 as an observer and handed it its id, which node 2 kept: once the real
    # node 1 ran, the cluster could never form until node 2's directory was deleted.
    c = Cluster(tmp_path / "cluster", 3)
    n1, n2 = c.nodes[1], c.nodes[2]
    alone = Broker(tmp_path / "alone", ["--node-id", "1"])
    alone.port, alone.http_port, alone.cluster_port = n1.port, n1.http_port, n1.cluster_port
    alone.served = True
    alone.start()
    alone_id = AdminClient({"bootstrap.servers": alone.bootstrap}).list_topics(
        timeout=TIMEOUT_S).cluster_id
    n2.launch()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while "controller.quorum.voters" not in n2.stderr_text():
            assert n2.alive() and time.monotonic() < deadline, n2.stderr_text()
            time.sleep(0.05)
        text = n2.stderr_text()
        assert "node 1 refused the connection (error 94): node 2 has voters 1,2,3, this node " \
               "(1) has 1: all nodes need the same controller.quorum.voters" in text, text
        meta = os.path.join(n2.data_dir, "meta.properties")
        assert not os.path.exists(meta) or alone_id not in open(meta).read()
        alone.stop()
        c.nodes[1].launch()
        c.nodes[3].launch()
        for i in (1, 2, 3):
            c.nodes[i].wait_started()
        c.wait_serving()
        ids = {c.metadata(i).cluster_id for i in (1, 2, 3)}
        assert len(ids) == 1 and alone_id not in ids, ids
    finally:
        if alone.alive():
            alone.stop()
        c.stop()


def test_consumer_group_rebalances_across_nodes(cluster):
    # Catches: members that reach the coordinator through different nodes split into two
    # groups, or a rebalance that never hands a leaving member's partitions to the other.
    topic = "t-" + uuid.uuid4().hex[:8]
    group = "g-" + uuid.uuid4().hex[:8]
    create_topic(cluster.bootstrap(1), topic, 6)

    def member(node):
        c = Consumer({"bootstrap.servers": cluster.bootstrap(node), "group.id": group,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        return c

    def poll_until(cs, cond):
        deadline = time.monotonic() + TIMEOUT_S
        while not cond():
            assert time.monotonic() < deadline, [len(c.assignment()) for c in cs]
            for c in cs:
                c.poll(0.1)

    a, b = member(1), member(3)
    poll_until([a, b], lambda: len(a.assignment()) == 3 and len(b.assignment()) == 3)
    assert {tp.partition for tp in a.assignment() + b.assignment()} == set(range(6))
    b.close()
    poll_until([a], lambda: len(a.assignment()) == 6)
    a.close()
