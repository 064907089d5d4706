"""What the consumer-group test modules share: topics, records, and the delivery ledger.

It owns the check that a group delivered every record with no more repeats than its commits
allow. Consumers commit each record right after reading it, so a record may come again only
when no commit covering it had succeeded before it came again (a commit that failed, or one
cut off by a rebalance or a restart); a repeat after a successful commit past it is a bug, and
so is a record that never came. Members report events with wall-clock times, which is what
lets records and commits seen by different processes be ordered.

Members run as processes (a kafkajs driver, or kafka_python_member() below) that print one JSON
event per line: "assign", "record", "commit" and "commit-error", each with a wall-clock "ts" in
milliseconds, then their result line after SIGTERM, once they have left the group cleanly.

Brokers for group tests start with a short group.initial.rebalance.delay.ms so that groups
form in well under a second instead of Kafka's 3 s.
"""

import base64
import json
import signal
import subprocess
import sys
import threading
import time
import uuid

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 60
PARTITIONS = 6
# 6 s is the broker's group.min.session.timeout.ms: the shortest session a member may ask for.
SESSION_MS = 6000
BROKER_ARGS = ["--set", "group.initial.rebalance.delay.ms=300"]


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def create_topic(broker, topic, partitions=PARTITIONS):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                              operation_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)


def produce(broker, topic, first, count, partitions=PARTITIONS):
    """Records first..first+count-1 with value "<index>", record i in partition i % partitions,
    so record i sits at offset i // partitions there."""
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(first, first + count):
        p.produce(topic, value=str(i).encode(), partition=i % partitions)
    assert p.flush(TIMEOUT_S) == 0


def wait_for(cond, timeout_s=TIMEOUT_S, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    assert cond(), "timed out waiting for %s" % what


class Ledger:
    """Every delivery and successful commit of one group, from any member, with times."""

    def __init__(self, partitions=PARTITIONS):
        self.partitions = partitions
        self.lock = threading.Lock()
        self.deliveries = {}  # (partition, offset) -> [(ts_ms, member)]
        self.commits = {}  # partition -> [(ts_ms, next offset)]
        self.values = set()

    def record(self, member, partition, offset, value, ts_ms):
        index = int(value)
        # The producer put record i at offset i // partitions of partition i % partitions.
        assert (partition, offset) == (index % self.partitions, index // self.partitions), \
            "record %d read at partition %d offset %d" % (index, partition, offset)
        with self.lock:
            self.deliveries.setdefault((partition, offset), []).append((ts_ms, member))
            self.values.add(index)

    def commit(self, partition, offset, ts_ms):
        with self.lock:
            self.commits.setdefault(partition, []).append((ts_ms, offset))

    def count(self):
        with self.lock:
            return len(self.values)

    def check(self, total):
        """Asserts records 0..total-1 all came, and that every repeat is one the commits
        allow; returns how many deliveries were repeats."""
        with self.lock:
            missing = sorted(set(range(total)) - self.values)
            assert not missing, "never delivered: %s" % missing[:20]
            assert max(self.values) < total, "unexpected records: %s" % sorted(self.values)[-5:]
            repeats = 0
            for (p, o), got in self.deliveries.items():
                for ts_ms, member in sorted(got)[1:]:
                    repeats += 1
                    early = [c for c in self.commits.get(p, []) if c[1] > o and c[0] < ts_ms]
                    assert not early, ("partition %d offset %d delivered again to %s after "
                                       "commit %s succeeded" % (p, o, member, early[0]))
            return repeats

    def committed_max(self):
        with self.lock:
            return {p: max(o for _, o in cs) for p, cs in self.commits.items()}


class Member:
    """One group member in a process of its own; its events go to the ledger."""

    def __init__(self, name, argv, stdin_bytes, ledger, cwd=None):
        self.name = name
        self.ledger = ledger
        self.assigned = None
        self.assignments = 0
        self.result = None
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.proc.stdin.write(stdin_bytes)
        self.proc.stdin.close()
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            kind = ev.get("event")
            if kind == "assign":
                self.assigned = sorted(ev["partitions"])
                self.assignments += 1
            elif kind == "record":
                self.ledger.record(self.name, ev["partition"], ev["offset"],
                                   base64.b64decode(ev["value"]), ev["ts"])
            elif kind == "commit":
                self.ledger.commit(ev["partition"], ev["offset"], ev["ts"])
            elif "result" in ev or "error" in ev:
                self.result = ev

    def stop(self):
        """SIGTERM: the member leaves the group cleanly (LeaveGroup) and exits."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=TIMEOUT_S)
        self.reader.join()
        assert self.result == {"result": True}, "%s: %s" % (self.name, self.result)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join()

    def reap(self):
        if self.proc.poll() is None:
            self.kill()


def settled(members, per_member, partitions=PARTITIONS):
    """All members hold per_member partitions each and together all of them, once."""
    got = [m.assigned for m in members]
    if any(a is None or len(a) != per_member for a in got):
        return False
    return sorted(p for a in got for p in a) == list(range(partitions))


def kafka_python_member():
    """A kafka-python group member: argv[1] is its JSON command (bootstrap, topic, group,
    sessionTimeout). Commits each record right after reading it; SIGTERM closes the consumer,
    which leaves the group."""
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    cmd = json.loads(sys.argv[1])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def emit(ev):
        ev["ts"] = time.time() * 1000.0
        print(json.dumps(ev), flush=True)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            emit({"event": "assign", "partitions": sorted(tp.partition for tp in assigned)})

    c = KafkaConsumer(bootstrap_servers=cmd["bootstrap"], group_id=cmd["group"],
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=cmd["sessionTimeout"], heartbeat_interval_ms=500,
                      reconnect_backoff_max_ms=500)
    c.subscribe([cmd["topic"]], listener=Listener())
    while not stop.is_set():
        for tp, recs in c.poll(timeout_ms=100).items():
            for r in recs:
                emit({"event": "record", "partition": tp.partition, "offset": r.offset,
                      "value": base64.b64encode(r.value).decode()})
                try:
                    c.commit({tp: OffsetAndMetadata(r.offset + 1, None)})
                    emit({"event": "commit", "partition": tp.partition, "offset": r.offset + 1})
                except KafkaError as e:
                    emit({"event": "commit-error", "partition": tp.partition,
                          "offset": r.offset + 1, "error": type(e).__name__})
    c.close()
    print(json.dumps({"result": True}), flush=True)


# Scenarios every group client runs. `start(members, n, broker, topic, group, ledger,
# session_ms=...)` starts n members of the client under test; `committed(broker, group)` reads
# the group's committed offsets through that client's admin API, as {partition: offset}.

# Members that must ride through a broker restart get a session that outlasts the restart and
# the client's reconnect back-off, so the restart alone never expires them.
RESTART_SESSION_MS = 10000


def scenario_read_each_record_once(start, committed, gbroker, topic, members, prefix):
    """Three members share six partitions; every record is read, none more often than the
    commits allow, and the final commits cover everything."""
    create_topic(gbroker, topic)
    produce(gbroker, topic, 0, 600)
    group = unique(prefix + "3")
    ledger = Ledger()
    ms = start(members, 3, gbroker, topic, group, ledger)
    wait_for(lambda: ledger.count() == 600 and settled(ms, 2), what="600 records")
    ledger.check(600)
    assert committed(gbroker, group) == {p: 100 for p in range(PARTITIONS)}
    for m in ms:
        m.stop()


def scenario_member_leaves_cleanly(start, gbroker, topic, members, prefix):
    """A member leaves cleanly: the other two take its partitions and read what follows."""
    create_topic(gbroker, topic)
    produce(gbroker, topic, 0, 300)
    group = unique(prefix + "leave")
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


def scenario_member_sigkill_expires_after_session(start, gbroker, topic, members, prefix):
    """A member is killed with SIGKILL; nobody tells the broker, so its partitions move only
    after its session timeout."""
    create_topic(gbroker, topic)
    group = unique(prefix + "kill")
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


def scenario_members_resume_after_broker_restart(start, committed, make_broker, topic, members,
                                                 prefix):
    """The broker restarts under two members: they resume from their committed offsets."""
    b = make_broker(BROKER_ARGS).start()
    create_topic(b, topic)
    produce(b, topic, 0, 120)
    group = unique(prefix + "restart")
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
