"""Idempotent producers (issue 11, first half): InitProducerId, per-partition producer state and
Produce's rules, with confluent-kafka (`enable.idempotence=true`) and raw requests, on a single
node and on a three-node cluster with replication factor 3.

Each test names the bug it catches. Faults are real: kill -9 of a partition's leader.
"""

import socket
import struct
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as kw
from cluster_harness import Cluster
from conftest import free_ports
from helpers import wait_until

TIMEOUT_S = 30
API_INIT_PRODUCER_ID = 22
NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_LEADER_OR_FOLLOWER = 6
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47

FAST_ISR = ["--set", "replica.lag.time.max.ms=1000"]


# ---- raw requests ----------------------------------------------------------------------------

def init_producer_id(port, transactional_id=None):
    """(error_code, producer_id, epoch) of InitProducerId v0."""
    kind, payload = kw.exchange(port, kw.frame(
        kw.header(API_INIT_PRODUCER_ID, 0, 11) + kw.string(transactional_id) + kw.i32(60000)))
    assert kind == "response", "the connection closed without an answer"
    corr, _, error, pid, epoch = struct.unpack(">iihqh", payload[:20])
    assert corr == 11
    return error, pid, epoch


def new_producer_id(port):
    """A producer id, once the node has a block of them (it asks the controller at start)."""
    def ask():
        error, pid, epoch = init_producer_id(port)
        if error == COORDINATOR_LOAD_IN_PROGRESS:
            return None
        assert error == NONE and pid >= 0 and epoch == 0, (error, pid, epoch)
        return pid
    return wait_until(ask, TIMEOUT_S, "a producer id")


def idempotent_batch(values, pid, epoch, seq):
    """An uncompressed RecordBatch v2 of values from producer (pid, epoch), first sequence seq,
    stamped now (a partition forgets producers whose last batch is older than
    producer.id.expiration.ms, a day)."""
    payload = kw.records_section([v.encode() for v in values])
    count = len(values)
    now_ms = int(time.time() * 1000)
    after_crc = (kw.i16(0) + kw.i32(count - 1) + kw.i64(now_ms) +
                 kw.i64(now_ms) + kw.i64(pid) + kw.i16(epoch) + kw.i32(seq) +
                 kw.i32(count) + payload)
    after_length = kw.i32(0) + b"\x02" + struct.pack(">I", kw.crc32c(after_crc)) + after_crc
    return kw.i64(0) + kw.i32(len(after_length)) + after_length


def produce_raw(port, topic, batch):
    """(error_code, base_offset) of one Produce v3 (acks=all) of batch to partition 0."""
    kind, payload = kw.exchange(port, kw.produce_v3(7, topic, batch))
    assert kind == "response", "the connection closed without an answer"
    return kw.produce_v3_answer(payload, 7)


def log_end(bootstrap, topic, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ends"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT_S)[1]
    finally:
        c.close()


def create_topic(bootstrap, name, partitions=1, replication=1):
    """Creates the topic and waits until each partition has a leader whose log is open (before,
    Metadata answers LEADER_NOT_AVAILABLE and Produce NOT_LEADER_OR_FOLLOWER)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, partitions, replication)],
                              request_timeout=TIMEOUT_S)
    fut[name].result(timeout=TIMEOUT_S)

    def led():
        t = admin.list_topics(topic=name, timeout=TIMEOUT_S).topics[name]
        return t.error is None and len(t.partitions) == partitions and all(
            p.leader >= 0 and p.error is None for p in t.partitions.values())
    wait_until(led, TIMEOUT_S, "%s led" % name)


def read_values(bootstrap, topic, partition, count):
    """The values of the partition's records in offset order, once count are there (and any
    more that arrive within a short wait after)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "check-%d" % time.monotonic_ns(),
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, 0)])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    quiet_until = None
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            if len(got) >= count:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() >= quiet_until:
                    break
            continue
        got.append(m.value().decode())
    c.close()
    return got


def idempotent_producer(bootstrap, **extra):
    conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
            "message.timeout.ms": 60000}
    conf.update(extra)
    return Producer(conf)


# ---- one node --------------------------------------------------------------------------------

def test_idempotent_producer_delivers_in_order(broker, topic):
    """confluent-kafka with enable.idempotence=true delivers every record once, in order.
    Catches: InitProducerId not served (the producer cannot start), idempotent batches refused
    or reordered."""
    create_topic(broker.bootstrap, topic)
    errors, acked = [], []
    p = idempotent_producer(broker.bootstrap)

    def report(err, msg):
        (errors if err is not None else acked).append(err or msg.value().decode())

    values = ["v%05d" % i for i in range(2000)]
    for v in values:
        p.produce(topic, v.encode(), partition=0, on_delivery=report)
        p.poll(0)
    assert p.flush(TIMEOUT_S) == 0
    assert errors == []
    assert acked == values
    assert read_values(broker.bootstrap, topic, 0, len(values)) == values


class CuttingProxy:
    """A TCP proxy to a broker that drops every cut_every-th chunk of the broker's answers and
    closes both connections instead: the broker handled (and committed) the requests that chunk
    answers, but the client never hears of it and sends them again on a new connection."""

    def __init__(self, listen_port, cut_every):
        self.target_port = None
        self.cut_every = cut_every
        self.chunks = 0
        self.cuts = 0
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", listen_port))
        self.srv.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.srv.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()  # the broker is down: so is its proxy
                continue
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src, dst, answers):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if answers:
                    with self.lock:
                        self.chunks += 1
                        cut = self.cut_every is not None and self.chunks % self.cut_every == 0
                        self.cuts += cut
                    if cut:
                        break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self):
        self.srv.close()


def test_lost_answers_leave_no_duplicates(make_broker, topic):
    """An idempotent confluent-kafka producer whose connection drops after the broker appended
    its batches but before the answers arrive (a proxy cuts the answers) sends them again: each
    value is in the log exactly once, in send order. Catches: retried batches appended again
    (duplicates) or after batches sent later (reordering)."""
    proxy_port = free_ports(1)[0]
    proxy = CuttingProxy(proxy_port, None)
    b = make_broker(["--set", "advertised.listeners=PLAINTEXT://127.0.0.1:%d" % proxy_port])
    b.start()
    proxy.target_port = b.port
    try:
        create_topic(b.bootstrap, topic)
        proxy.cut_every = 10
        p = idempotent_producer("127.0.0.1:%d" % proxy_port,
                                **{"acks": "all", "linger.ms": 2, "retry.backoff.ms": 20})
        errors, acked = [], []

        def report(err, msg):
            (errors if err is not None else acked).append(err or msg.value().decode())

        values = ["c%05d" % i for i in range(5000)]
        for i, v in enumerate(values):
            p.produce(topic, v.encode(), partition=0, on_delivery=report)
            if i % 10 == 9:
                p.poll(0.002)
        assert p.flush(60) == 0
        cuts = proxy.cuts
        proxy.cut_every = None
        assert cuts >= 3, "the proxy cut only %d answers" % cuts
        assert errors == []
        assert acked == values
        got = read_values(b.bootstrap, topic, 0, len(values))
        assert len(got) == len(set(got)), "%d duplicates" % (len(got) - len(set(got)))
        assert got == values, "reordered or lost"
    finally:
        proxy.close()


def test_init_producer_id_unique_ids(broker):
    """Every InitProducerId without a transactional id gets a new id, epoch 0, across blocks of
    1000 (the node asks the controller for the next block before its block runs out).
    Catches: an id handed out twice, a node stuck once its first block is used up."""
    seen = set()
    for _ in range(2500):
        seen.add(new_producer_id(broker.port))
    assert len(seen) == 2500


def test_transactional_id_not_served_yet(broker):
    """With a transactional id the answer is COORDINATOR_NOT_AVAILABLE (transactions are the
    issue's second half), as FindCoordinator answers for a transaction key; an empty one is
    INVALID_REQUEST as in Kafka. Catches: a transactional producer handed an id that nothing
    would fence."""
    assert init_producer_id(broker.port, "txn-1")[0] == COORDINATOR_NOT_AVAILABLE
    assert init_producer_id(broker.port, "")[0] == 42


def test_raw_duplicate_gap_and_epoch(broker, topic):
    """Kafka's rules on a raw Produce: a retried batch (same producer, epoch and sequences) of
    the last five gets its original offset and is not appended; a sequence gap is
    OUT_OF_ORDER_SEQUENCE_NUMBER; a new epoch must start at 0; a stale epoch is
    INVALID_PRODUCER_EPOCH. Catches: duplicates appended again, gaps accepted, zombies of an
    older epoch accepted."""
    create_topic(broker.bootstrap, topic)
    port = broker.port
    pid = new_producer_id(port)
    offsets = []
    for k in range(6):
        err, off = produce_raw(port, topic, idempotent_batch(["a%d" % k] * 3, pid, 0, 3 * k))
        assert err == NONE
        offsets.append(off)
    end = log_end(broker.bootstrap, topic)
    for k in range(1, 6):  # the last five batches
        assert produce_raw(port, topic, idempotent_batch(["a%d" % k] * 3, pid, 0, 3 * k)) == (
            NONE, offsets[k])
    assert log_end(broker.bootstrap, topic) == end, "a duplicate was appended"
    # The sixth newest is no longer remembered: out of order, as in Kafka.
    assert produce_raw(port, topic, idempotent_batch(["a0"] * 3, pid, 0, 0))[0] == \
        OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce_raw(port, topic, idempotent_batch(["gap"], pid, 0, 19))[0] == \
        OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce_raw(port, topic, idempotent_batch(["e1"], pid, 1, 5))[0] == \
        OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce_raw(port, topic, idempotent_batch(["e1"], pid, 1, 0))[0] == NONE
    assert produce_raw(port, topic, idempotent_batch(["e0"], pid, 0, 18))[0] == \
        INVALID_PRODUCER_EPOCH
    assert log_end(broker.bootstrap, topic) == end + 1


def test_pipelined_retry_gets_same_offset(broker, topic):
    """A retry sent while its original may still be waiting for its commit (two Produce
    requests of one batch pipelined on one connection) is answered with the original's offset
    and appended once. Catches: a batch in flight not in the producer state, a duplicate
    answered before its original is committed out of order."""
    create_topic(broker.bootstrap, topic)
    pid = new_producer_id(broker.port)
    for k in range(20):
        batch = idempotent_batch(["r%d" % k] * 4, pid, 0, 4 * k)
        s = kw.send(broker.port, kw.produce_v3(7, topic, batch) + kw.produce_v3(7, topic, batch))
        try:
            answers = []
            for _ in range(2):
                kind, payload = kw.receive(s)
                assert kind == "response"
                answers.append(kw.produce_v3_answer(payload, 7))
        finally:
            s.close()
        assert answers[0] == answers[1] == (NONE, 4 * k)
    assert log_end(broker.bootstrap, topic) == 80


def test_duplicate_detected_after_restart(make_broker, topic):
    """The producer state is rebuilt from the log after a restart: a retry of a batch written
    before it still gets its original offset. Catches: state kept in memory only."""
    b = make_broker().start()
    create_topic(b.bootstrap, topic)
    pid = new_producer_id(b.port)
    batch = idempotent_batch(["x", "y"], pid, 0, 0)
    err, first = produce_raw(b.port, topic, batch)
    assert err == NONE
    assert produce_raw(b.port, topic, idempotent_batch(["z"], pid, 0, 2))[0] == NONE
    b.stop()
    b.start()

    def reopened():
        # The partition answers NOT_LEADER_OR_FOLLOWER while its log is still opening.
        answer = produce_raw(b.port, topic, batch)
        return answer if answer[0] != NOT_LEADER_OR_FOLLOWER else None
    assert wait_until(reopened, TIMEOUT_S, "the partition reopened") == (NONE, first)
    assert produce_raw(b.port, topic, idempotent_batch(["w"], pid, 0, 4))[0] == \
        OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log_end(b.bootstrap, topic) == first + 3


# ---- three nodes -----------------------------------------------------------------------------

@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path, 3, extra_args=FAST_ISR).start()
    yield c
    c.stop()


def partition_leader(c, node, topic, partition=0):
    return c.metadata(node, topic).topics[topic].partitions[partition].leader


def wait_leader(c, topic, alive):
    def agreed():
        seen = {partition_leader(c, n, topic) for n in alive}
        return seen.pop() if len(seen) == 1 and list(seen)[0] in alive else None
    return wait_until(agreed, TIMEOUT_S, "an agreed leader of %s" % topic)


def test_cluster_ids_unique_across_nodes(cluster):
    """Producer ids come from blocks the controller commits: no two nodes hand out one id.
    Catches: blocks granted per node without the metadata log."""
    seen = set()
    for n in (1, 2, 3):
        for _ in range(50):
            pid = new_producer_id(cluster.nodes[n].port)
            assert pid not in seen, "producer id %d handed out twice" % pid
            seen.add(pid)


def test_duplicate_after_failover_gets_original_offset(cluster):
    """A batch committed by a leader that is then killed, retried to the new leader, gets its
    original offset and is not appended again: followers keep the producer state too.
    Catches: a new leader without the committed producer state (a duplicate appended)."""
    c = cluster
    create_topic(c.bootstrap(1), "dup", replication=3)
    pid = new_producer_id(c.nodes[1].port)
    batch = idempotent_batch(["p", "q", "r"], pid, 0, 0)

    def produced():
        # A new partition's leadership may still move to its preferred replica.
        leader = wait_leader(c, "dup", [1, 2, 3])
        err, offset = produce_raw(c.nodes[leader].port, "dup", batch)
        return (leader, offset) if err == NONE else None
    leader, first = wait_until(produced, TIMEOUT_S, "the first batch acknowledged")
    c.nodes[leader].kill()
    alive = [n for n in (1, 2, 3) if n != leader]

    def send(b):
        """The answer of the leader, once one serves (a new leader answers
        NOT_LEADER_OR_FOLLOWER until its no-op is committed)."""
        def once():
            new_leader = wait_leader(c, "dup", alive)
            answer = produce_raw(c.nodes[new_leader].port, "dup", b)
            return (new_leader, answer) if answer[0] != NOT_LEADER_OR_FOLLOWER else None
        return wait_until(once, TIMEOUT_S, "an answer from the new leader")

    new_leader, answer = send(batch)
    assert answer == (NONE, first)
    assert send(idempotent_batch(["s"], pid, 0, 5))[1][0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert send(idempotent_batch(["s"], pid, 0, 3))[1][0] == NONE
    values = read_values(c.bootstrap(new_leader), "dup", 0, 4)
    assert values == ["p", "q", "r", "s"]


def test_idempotent_producer_survives_leader_kill(tmp_path):
    """An idempotent confluent-kafka producer keeps sending while answers are lost (a proxy in
    front of each node cuts some) and its partition's leader is killed (kill -9): it retries,
    to the same leader or the new one, and every value is in the log exactly once and in send
    order. Catches: retried batches appended twice (duplicates), in particular by a new leader
    without the producer state of the batches the old one committed, and batches after a
    failed one appended before its retry (reordering)."""
    c = Cluster(tmp_path, 3, extra_args=FAST_ISR)
    proxies = {}
    for n, node in c.nodes.items():
        port = free_ports(1)[0]
        proxies[n] = CuttingProxy(port, None)
        proxies[n].target_port = node.port
        node.extra_args += ["--set", "advertised.listeners=PLAINTEXT://127.0.0.1:%d" % port]
    c.start()
    # Clients (the harness's too) reach each node through its proxy, the address it advertises.
    c.bootstrap = lambda n: "127.0.0.1:%d" % proxies[n].srv.getsockname()[1]
    try:
        create_topic(c.bootstrap(1), "idem", replication=3)
        leader = wait_leader(c, "idem", [1, 2, 3])
        for proxy in proxies.values():
            proxy.cut_every = 10
        bootstrap = ",".join(c.bootstrap(n) for n in (1, 2, 3))
        p = idempotent_producer(bootstrap, **{"acks": "all", "linger.ms": 2,
                                              "retry.backoff.ms": 20})
        errors, acked = [], []

        def report(err, msg):
            (errors if err is not None else acked).append(err or msg.value().decode())

        values = ["m%05d" % i for i in range(8000)]
        killed = False
        for i, v in enumerate(values):
            p.produce("idem", v.encode(), partition=0, on_delivery=report)
            if i % 10 == 9:
                p.poll(0.002)  # a steady stream: requests are in flight when the leader dies
            if not killed and len(acked) >= 2000:
                c.nodes[leader].kill()
                killed = True
        assert killed, "the leader was not killed while sending"
        assert p.flush(90) == 0
        cuts = sum(pr.cuts for pr in proxies.values())
        for proxy in proxies.values():
            proxy.cut_every = None
        assert cuts >= 3, "the proxies cut only %d answers" % cuts
        assert errors == []
        assert acked == values
        alive = [n for n in (1, 2, 3) if n != leader]
        new_leader = wait_leader(c, "idem", alive)
        got = read_values(c.bootstrap(new_leader), "idem", 0, len(values))
        dups = len(got) - len(set(got))
        assert dups == 0, "%d duplicates" % dups
        assert got == values, "reordered or lost"
    finally:
        c.stop()
        for proxy in proxies.values():
            proxy.close()
