#!/usr/bin/python3
"""Fault injection on a 3-node chronik cluster, checked in the style of Jepsen's Kafka test.

Run by hand (from the repository, after scripts/build.sh release):
    /usr/bin/python3 tests/chaos/run.py --seed 7 --faults 200
    /usr/bin/python3 tests/chaos/run.py --seed 7 --duration-s 600       # faults for 10 minutes
    /usr/bin/python3 tests/chaos/run.py --seed 1 --faults 4 --rf 1 --min-insync 1
    /usr/bin/python3 tests/chaos/run.py --seed 3 --kinds isolate,one_way --keep
    /usr/bin/python3 tests/chaos/checker.py /tmp/chronik-chaos-7-XXXX/history.json
The seed fixes the fault schedule (kinds, which partition or node a fault aims at, hold times,
gaps); who holds a role (the leader, the controller) is looked up when the fault comes, so a
replay repeats the schedule, not every interleaving. CHRONIK_BIN names the binary (default
build/release/chronik). ctest runs `--seed 1 --faults 4` (label "chaos", tests/chaos/
CMakeLists.txt); a 4-fault run takes about 20 s, 200 faults about 15 minutes.

What it does:
  - starts 3 nodes (cluster_harness.Cluster, free ports, its own directory) whose peers reach
    each other only through tests/chaos/proxy.py (node i dials j at the proxy port P[i][j]);
  - creates a topic (--partitions, --rf, min.insync.replicas=--min-insync);
  - runs --producers librdkafka producers (acks=all, enable.idempotence=false unless
    --idempotence, retries on,
    message.timeout.ms 15 s), each sending unique values round-robin over the partitions and
    recording every acknowledged (partition, offset, value), and --consumers consumers (assign
    from the beginning, every node in bootstrap.servers; read_committed and read_uncommitted
    in turn) recording every record read and the high watermark their client caches after each
    poll; one more client polls ListOffsets;
    faults start once every consumer has read from every partition;
  - injects --faults faults, one at a time (a gap of load, the fault, a hold, the recovery),
    each logged with its time since the start: kill -9 (and restart) of a partition's leader,
    of the controller, of a follower (RF 1: a node that does not lead that partition); SIGSTOP
    then SIGCONT of a node; isolation of a node (its proxy pairs cut both ways) then heal; a
    one-way cut (one ordered pair, or all of a node's outgoing or incoming pairs); slow links
    (a delay on a node's pairs); rarely kill -9 of all three nodes at once, then restart.
    --kinds restricts the draw; "wipe" (a leader's copy deleted while it is down) is drawn only
    when asked for;
  - then heals every link, restarts whatever is down, waits until every partition answers
    ListOffsets, drains the producers, waits until every consumer has read up to the last
    acknowledged records with its last cached high watermark its highest (a consumer kept from
    them fails the run), stops the consumers and waits until Metadata shows every partition led
    with all its replicas in sync;
  - reads every partition from offset 0 to its high watermark through its current leader (a
    fresh consumer: Kafka serves fetches from the leader only; the reads during the run came
    from whichever node led at the time), stops the cluster (SIGTERM, clean exits asserted) and
    reads every node's copy of every partition from its segment files (disklog.py), so each
    replica is compared with the leader's log, not only the node that leads at the end;
  - runs checker.py on the history (its docstring lists the checks).
Prints one summary line ("chaos: seed=S faults=N ... -> OK"), the first violations if any, and
exits 1 on a violation or when the cluster does not come back. The run's directory (node logs,
clients.log, history.json) is kept when it fails or with --keep. With --client-abort-reruns N
the run is made in a child process and made again, at most N more times, when librdkafka 2.0.2
aborts that process before a verdict (its issue 3608, in the clients' own broker threads); a
verdict, or any other crash, is final.
"""

import argparse
import collections
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "integration")]

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError,  # noqa: E402
                             KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from checker import check  # noqa: E402
from disklog import DiskLogError, read_partition  # noqa: E402
from cluster_harness import Cluster  # noqa: E402
from conftest import CHRONIK_BIN  # noqa: E402
from proxy import FaultProxy  # noqa: E402

NODES = (1, 2, 3)
TIMEOUT_S = 30
RECOVERY_TIMEOUT_S = 60
ROLE_TIMEOUT_S = 10  # for a leader or controller to be named before a fault aims at it

# Fault kinds and their weights: node crashes most, a whole-cluster crash rarely.
FAULTS = [
    ("kill_leader", 3),
    ("kill_controller", 2),
    ("kill_follower", 2),
    ("pause", 2),
    ("isolate", 2),
    ("one_way", 2),
    ("slow", 1),
    ("kill_all", 0.5),
]
# Only on request (--kinds wipe): kill -9 of a partition's leader, its copies of the topic
# deleted, restart. With replication.factor 1 that loses acknowledged data, which the checker
# must report (ctest chaos_detects_loss); with more replicas it is the "wiped replica rejoins"
# case, but outside Raft's fault model (a wiped voter forgets what it acknowledged), so it is
# never drawn at random.
ON_REQUEST = ("wipe",)

# What librdkafka 2.0.2 prints when it aborts its process from a broker thread
# (confluentinc/librdkafka issue 3608, open): a client library defect, seen here when a node dies.
CLIENT_ABORT = "rd_kafka_broker_destroy_final: Assertion"


# librdkafka's own log lines (connection failures are the point of the run) go to the run's
# clients.log, not the terminal: main() points this logger there.
CLIENT_LOG = logging.getLogger("chaos.rdkafka")
CLIENT_LOG.propagate = False

# What an idempotent producer logs (debug "eos") when it ends its epoch itself after sending a
# batch ahead of an earlier one that had failed: the new leader answered the gap
# OUT_OF_ORDER_SEQUENCE_NUMBER, and librdkafka 2.0.2 bumps the epoch and sends its records
# again under new sequence numbers, written ones included (confluentinc/librdkafka issue 4953;
# checker.py counts those copies as "renumbered").
RENUMBER_LOG = re.compile(r"failed due to skipped sequence numbers \(PID\{Id:(\d+),Epoch:(\d+)\}"
                          r".* caused by previous failed request")


class RenumberLog(logging.Handler):
    """Collects [producer id, epoch] of each epoch a client ended so (RENUMBER_LOG)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.ended = []

    def emit(self, record):
        m = RENUMBER_LOG.search(record.getMessage())
        if m and [int(m.group(1)), int(m.group(2))] not in self.ended:
            self.ended.append([int(m.group(1)), int(m.group(2))])


def client_config(conf):
    # A restarted node is dialled again within half a second (librdkafka's backoff otherwise
    # grows to 10 s, and clients would sit out most of the run after a few restarts).
    return dict(conf, logger=CLIENT_LOG, **{"reconnect.backoff.ms": 50,
                                             "reconnect.backoff.max.ms": 500})


class RunError(Exception):
    """The cluster did not behave well enough for the run to finish (not a checker verdict)."""


class Log:
    def __init__(self):
        self.t0 = time.monotonic()
        self.events = []

    def __call__(self, fmt, *args):
        t = time.monotonic() - self.t0
        text = fmt % args if args else fmt
        self.events.append([round(t, 3), text])
        print("[%8.3f] %s" % (t, text), flush=True)


# Every client made, kept until the process ends: librdkafka 2.0.2 can abort the process
# ("rd_kafka_broker_destroy_final: Assertion `thrd_is_current(rkb->rkb_thread)' failed",
# confluentinc/librdkafka issue 3608) when a client is destroyed while one of its broker threads
# is still reconnecting to a restarted node, which a run makes common. Consumer.close() destroys
# its client as well, so clients are flushed or unassigned and handed to retire(), never closed
# or dropped; main() leaves with os._exit once its verdict is printed.
_CLIENTS = []


def retire(client):
    """Stops a consumer fetching and keeps client alive until the process ends (see _CLIENTS)."""
    if isinstance(client, Consumer):
        try:
            client.unassign()
        except KafkaException:
            pass  # nothing assigned, or the client is already failing: it only has to live on
    _CLIENTS.append(client)


class Producers:
    """n producer threads, each sending unique values at rate_per_s round-robin over the
    partitions and recording every acknowledged send."""

    def __init__(self, bootstrap, topic, partitions, n, rate_per_s, seed, idempotence):
        self.idempotence = idempotence
        self.acks = []
        self.errors = collections.Counter()
        self._errors_lock = threading.Lock()
        self._sent = [0] * n  # one slot per writer thread
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, name="producer-%d" % i, args=(
            bootstrap, topic, partitions, i, rate_per_s, seed), daemon=True) for i in range(n)]
        self.failed = []

    @property
    def sent(self):
        return sum(self._sent)

    def start(self):
        for t in self._threads:
            t.start()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join()
        if self.failed:
            raise RunError("producer thread failed: %s" % self.failed[0])

    def _run(self, bootstrap, topic, partitions, index, rate_per_s, seed):
        try:
            self._produce(bootstrap, topic, partitions, index, rate_per_s, seed)
        except Exception as e:  # reported by stop(); the run fails
            self.failed.append(repr(e))

    def _produce(self, bootstrap, topic, partitions, index, rate_per_s, seed):
        p = Producer(client_config({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": self.idempotence,
            # librdkafka's idempotence log, where it says why it ends an epoch (RENUMBER_LOG)
            **({"debug": "eos"} if self.idempotence else {}),
            "retries": 1000000,
            "retry.backoff.ms": 100,
            "message.timeout.ms": 15000,
            "request.timeout.ms": 5000,
            "linger.ms": 5,
            "compression.type": "none",  # disklog.py reads uncompressed batches only
            "topic.metadata.refresh.interval.ms": 1000,
        }))

        def on_delivery(err, msg):
            if err is None:
                self.acks.append([msg.partition(), msg.offset(), msg.value().decode()])
            else:
                with self._errors_lock:
                    self.errors[err.name()] += 1

        interval_s = 1.0 / rate_per_s
        due = time.monotonic()
        n = 0
        while not self._stop.is_set():
            value = "s%d-w%d-%d" % (seed, index, n)  # seed, writer, sequence: unique
            try:
                p.produce(topic, value=value.encode(), partition=n % partitions,
                          on_delivery=on_delivery)
            except BufferError:
                p.poll(interval_s)  # the queue is full: serve deliveries, then send it again
                continue
            n += 1
            self._sent[index] = n
            due += interval_s
            p.poll(max(0.0, due - time.monotonic()))
        left = p.flush(TIMEOUT_S)
        retire(p)
        if left:
            raise RunError("%d sends neither acknowledged nor failed %d s after the run" % (
                left, TIMEOUT_S))


class Consumers:
    """n consumer threads reading every partition from the beginning (assign, no group), each
    recording what it reads and its client's cached high watermarks; plus one thread asking
    ListOffsets for the high watermarks."""

    def __init__(self, bootstrap, topic, partitions, n, t0):
        self.t0 = t0
        self.partitions = partitions
        self.reads = {"c%d" % i: [] for i in range(n)}
        self.marks = {"c%d" % i: [] for i in range(n)}
        self.marks["listoffsets"] = []
        self.errors = collections.Counter()
        self.error_log = []  # [seconds, client, error]: when each happened, for diagnosis
        self._errors_lock = threading.Lock()
        self.failed = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._guard, name=name, args=(
            self._consume, bootstrap, topic, partitions, name), daemon=True) for name in
            self.reads]
        self._threads.append(threading.Thread(target=self._guard, name="listoffsets", args=(
            self._list_offsets, bootstrap, topic, partitions, "listoffsets"), daemon=True))

    def start(self):
        for t in self._threads:
            t.start()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join()
        if self.failed:
            raise RunError("consumer thread failed: %s" % self.failed[0])

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except Exception as e:  # reported by stop(); the run fails
            self.failed.append(repr(e))

    def _t(self):
        return round(time.monotonic() - self.t0, 3)

    def wait_reading(self, timeout_s=TIMEOUT_S):
        """Waits until every consumer has read from every partition and the ListOffsets
        client has seen every partition's high watermark, so faults hit a running workload."""
        deadline = time.monotonic() + timeout_s
        while True:
            missing = {name: sorted(set(range(self.partitions)) - {r[0] for r in rs})
                       for name, rs in list(self.reads.items()) + [
                           ("listoffsets", self.marks["listoffsets"])]}
            missing = {k: v for k, v in missing.items() if v}
            if not missing:
                return
            if self.failed or time.monotonic() > deadline:
                raise RunError("consumers not reading every partition after %d s: %s %s" % (
                    timeout_s, missing, self.failed))
            time.sleep(0.02)

    def wait_caught_up(self, acks, timeout_s=RECOVERY_TIMEOUT_S):
        """Waits until every consumer has read each partition up to its last acknowledged
        offset and the high watermark it caches last is the highest it saw. A single late low
        answer (computed before a SIGSTOP, read after the new leader's) is then followed by a
        current one before the consumers stop, where it could otherwise be a consumer's last
        observation (seen in CI: librdkafka backs a partition off for fetch.error.backoff.ms
        after NOT_LEADER_OR_FOLLOWER, and the producers had drained). A consumer that never
        gets there was kept from the acknowledged records: the run fails."""
        last = {}
        for p, o, _ in acks:
            if o is not None:
                last[p] = max(o, last.get(p, -1))
        deadline = time.monotonic() + timeout_s
        while True:
            behind = {}
            for name, rs in self.reads.items():
                read = {}
                for p, o, _ in list(rs):
                    read[p] = max(o, read.get(p, -1))
                marks = {}
                for p, hw, *_ in list(self.marks[name]):
                    top, _ = marks.get(p, (hw, hw))
                    marks[p] = (max(top, hw), hw)
                lag = {p: "read %d of %d, high watermark %s" % (
                    read.get(p, -1), o, "%d (highest %d)" % marks[p][::-1] if p in marks else
                    "none") for p, o in last.items()
                    if read.get(p, -1) < o or p not in marks or marks[p][1] < marks[p][0]}
                if lag:
                    behind[name] = lag
            if not behind:
                return
            if self.failed or time.monotonic() > deadline:
                raise RunError("consumers not caught up with the acknowledged records %d s "
                               "after the run: %s %s" % (timeout_s, behind, self.failed))
            time.sleep(0.05)  # polling the consumer threads' records, not a state change

    def _error(self, name, err):
        text = err.name() if isinstance(err, KafkaError) else str(err)
        with self._errors_lock:
            self.errors[text] += 1
            self.error_log.append([self._t(), name, text])

    @staticmethod
    def _consumer(bootstrap, name, isolation="read_committed"):
        return Consumer(client_config({
            "bootstrap.servers": bootstrap,
            "group.id": "chaos-" + name,  # required by the client; assign() joins no group
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "topic.metadata.refresh.interval.ms": 1000,
        }))

    def _consume(self, bootstrap, topic, partitions, name):
        # Every other consumer reads uncommitted (its cached end is the high watermark itself);
        # the others keep librdkafka's default, read_committed (the last stable offset, equal
        # to the high watermark without transactions).
        c = self._consumer(bootstrap, name, ("read_committed", "read_uncommitted")[
            int(name[1:]) % 2])
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        reads, marks = self.reads[name], self.marks[name]
        last = {}
        try:
            while not self._stop.is_set():
                for m in c.consume(num_messages=500, timeout=0.2):
                    if m.error() is not None:
                        self._error(name, m.error())
                    else:
                        reads.append([m.partition(), m.offset(), m.value().decode()])
                for tp in tps:
                    _, high = c.get_watermark_offsets(tp, cached=True)
                    if high >= 0 and last.get(tp.partition) != high:
                        marks.append([tp.partition, high, self._t()])
                        last[tp.partition] = high
        finally:
            retire(c)

    def _list_offsets(self, bootstrap, topic, partitions, name):
        c = self._consumer(bootstrap, name)
        marks = self.marks[name]
        last = {}
        try:
            while not self._stop.is_set():
                for p in range(partitions):
                    try:
                        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=2)
                    except KafkaException as e:
                        self._error(name, e.args[0])
                        continue
                    if high >= 0 and last.get(p) != high:
                        marks.append([p, high, self._t()])
                        last[p] = high
                self._stop.wait(0.05)  # pacing between rounds, not waiting for a state
        finally:
            retire(c)


class Chaos:
    def __init__(self, args, root, log):
        self.args = args
        self.log = log
        self.rng = random.Random(args.seed)
        self.proxy = FaultProxy(NODES)
        extra = []
        for kv in args.broker_set:
            extra += ["--set", kv]
        self.cluster = Cluster(root, len(NODES), extra_args=extra,
                               voter_port=self.proxy.listen_port)
        for j, b in self.cluster.nodes.items():
            self.proxy.set_target(j, b.cluster_port)
        self.paused = set()
        self._admins = {}  # node id -> the admin client bootstrapped from it (see admin())
        self.injected = 0
        self.topic = "chaos-%d" % args.seed
        self.bootstrap = ",".join(b.bootstrap for b in self.cluster.nodes.values())

    # --- the cluster as clients see it ---

    def up(self):
        return [i for i in NODES if self.cluster.nodes[i].alive() and i not in self.paused]

    def admin(self, i):
        """The admin client bootstrapped from node i: made once and kept for the run (see
        _CLIENTS; a node keeps its ports across restarts, so the client dials it again)."""
        if i not in self._admins:
            self._admins[i] = AdminClient(client_config({
                "bootstrap.servers": self.cluster.bootstrap(i)}))
            retire(self._admins[i])
        return self._admins[i]

    def metadata(self, topic=None):
        """Metadata (of topic, or of the cluster only) from any running node, or None when none
        answers in time. Asking for a topic before creating it would auto-create it."""
        for i in self.up():
            try:
                md = self.admin(i).list_topics(topic=topic, timeout=5)
            except KafkaException:
                continue
            t = md.topics.get(topic)
            if topic is None or (t is not None and t.error is None):
                return md
        return None

    def leader_of(self, partition, timeout_s=ROLE_TIMEOUT_S):
        """(leader, replicas) of partition; the leader is None when none is known (during an
        election, or with every replica down) within timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            md = self.metadata(self.topic)
            if md is not None:
                p = md.topics[self.topic].partitions[partition]
                if p.leader >= 0 or time.monotonic() > deadline:
                    return (p.leader if p.leader >= 0 else None), list(p.replicas)
            elif time.monotonic() > deadline:
                return None, []
            time.sleep(0.05)

    def controller(self, timeout_s=ROLE_TIMEOUT_S):
        """The controller's id, or None when no node names one within timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            md = self.metadata()
            if md is not None and md.controller_id >= 0:
                return md.controller_id
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def create_topic(self):
        admin = AdminClient(client_config({"bootstrap.servers": self.bootstrap}))
        retire(admin)
        topic = NewTopic(self.topic, self.args.partitions, self.args.rf,
                         config={"min.insync.replicas": str(self.args.min_insync)})
        fut = admin.create_topics([topic], request_timeout=TIMEOUT_S)
        try:
            fut[self.topic].result(timeout=TIMEOUT_S)
        except KafkaException as e:
            raise RunError("creating %s (%d partitions, replication.factor %d, "
                           "min.insync.replicas %d) failed: %s" % (
                               self.topic, self.args.partitions, self.args.rf,
                               self.args.min_insync, e))
        self.wait_partitions_serve()

    def wait_partitions_serve(self, timeout_s=RECOVERY_TIMEOUT_S):
        """Waits until every partition answers ListOffsets (through its leader). Each failed
        attempt is logged and the next one uses a new client: librdkafka 2.0.2 clients created
        just after a node restart were seen failing every query of that node's partition with
        _UNKNOWN_PARTITION for over a minute while new clients (and kcat) got the offsets."""
        deadline = time.monotonic() + timeout_s
        failures = collections.Counter()
        for p in range(self.args.partitions):
            while True:
                c = Consumer(client_config({"bootstrap.servers": self.bootstrap,
                                            "group.id": "chaos-wait"}))
                try:
                    c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=2)
                    break
                except KafkaException as e:
                    failures[(p, e.args[0].name())] += 1
                    if time.monotonic() > deadline:
                        raise RunError("partition %d answers no ListOffsets %d s after "
                                       "recovery: %s" % (p, timeout_s, e))
                finally:
                    retire(c)
        if failures:
            self.log("ListOffsets failed before every partition answered (partition, error: "
                     "attempts): %s", dict(failures))

    # --- faults ---

    def restart(self, ids):
        for i in ids:
            self.cluster.nodes[i].launch()
        for i in ids:
            try:
                self.cluster.nodes[i].wait_started()
            except Exception as e:
                raise RunError("node %d did not start again: %s" % (i, e))
        self.cluster.wait_serving(ids, timeout_s=RECOVERY_TIMEOUT_S)

    def kill(self, ids, why):
        self.log("kill -9 node%s %s (%s)", "s" if len(ids) > 1 else "",
                 ",".join(map(str, ids)), why)
        for i in ids:
            self.cluster.nodes[i].kill()

    def inject(self, kind):
        rng = self.rng
        partition = rng.randrange(self.args.partitions)
        pick = rng.random()  # the node among candidates, drawn before the cluster is asked
        # The fault's length (time.sleep(hold_s) below): load runs meanwhile; no state is
        # awaited there.
        hold_s = rng.uniform(self.args.hold_s_min, self.args.hold_s_max)
        self.injected += 1

        def choose(candidates):
            return sorted(candidates)[int(pick * len(candidates))]

        if kind in ("kill_leader", "kill_follower", "kill_controller"):
            if kind == "kill_controller":
                node = self.controller()
                why = "the controller"
            else:
                leader, replicas = self.leader_of(partition)
                if kind == "kill_leader":
                    node, why = leader, "leader of p%d" % partition
                else:
                    followers = [r for r in replicas if r != leader] or \
                        [i for i in NODES if i != leader]
                    node = choose(followers) if leader is not None else None
                    why = "follower of p%d (leader %s)" % (partition, leader)
            if node not in self.up():
                self.log("%s: no running node to pick (%s is %r), skipped", kind, why, node)
                self.injected -= 1
                return
            self.kill([node], why)
            time.sleep(hold_s)
            self.log("restart node %d", node)
            self.restart([node])
        elif kind == "wipe":
            leader, _ = self.leader_of(partition)
            if leader not in self.up():
                self.injected -= 1
                self.log("wipe: no running leader of p%d (%r), skipped", partition, leader)
                return
            self.kill([leader], "leader of p%d, to wipe" % partition)
            data_dir = self.cluster.nodes[leader].data_dir
            wiped = sorted(d for d in os.listdir(data_dir) if d.startswith(self.topic + "-"))
            for d in wiped:
                shutil.rmtree(os.path.join(data_dir, d))
            self.log("wiped node %d's %s", leader, ", ".join(wiped))
            time.sleep(hold_s)
            self.log("restart node %d", leader)
            self.restart([leader])
        elif kind == "kill_all":
            self.kill(list(NODES), "all at once")
            time.sleep(hold_s)
            self.log("restart every node")
            self.restart(list(NODES))
        elif kind == "pause":
            node = choose(NODES)
            self.log("SIGSTOP node %d", node)
            os.kill(self.cluster.nodes[node].pid, signal.SIGSTOP)
            self.paused.add(node)
            time.sleep(hold_s)
            self.log("SIGCONT node %d", node)
            os.kill(self.cluster.nodes[node].pid, signal.SIGCONT)
            self.paused.discard(node)
        elif kind == "isolate":
            node = choose(NODES)
            self.log("isolate node %d (its links cut both ways)", node)
            self.proxy.isolate(node)
            time.sleep(hold_s)
            self.log("heal")
            self.proxy.heal()
        elif kind == "one_way":
            node = choose(NODES)
            variant = rng.choice(["pair", "out", "in"])
            if variant == "pair":
                other = rng.choice([j for j in NODES if j != node])
                pairs, what = [(node, other)], "%d -> %d" % (node, other)
            elif variant == "out":
                pairs, what = [(node, j) for j in NODES if j != node], "%d -> others" % node
            else:
                pairs, what = [(j, node) for j in NODES if j != node], "others -> %d" % node
            self.log("cut %s (one way)", what)
            self.proxy.cut(pairs)
            time.sleep(hold_s)
            self.log("heal")
            self.proxy.heal()
        elif kind == "slow":
            node = choose(NODES)
            ms = rng.choice([20, 50, 100, 300])
            self.log("delay node %d's links by %d ms", node, ms)
            self.proxy.delay(self.proxy.pairs_of(node), ms)
            time.sleep(hold_s)
            self.log("heal")
            self.proxy.heal()
        else:
            raise AssertionError(kind)

    def recover(self):
        """Heals every link, resumes paused nodes, restarts dead ones, waits until every
        partition serves."""
        self.proxy.heal()
        for i in list(self.paused):
            os.kill(self.cluster.nodes[i].pid, signal.SIGCONT)
            self.paused.discard(i)
        dead = [i for i in NODES if not self.cluster.nodes[i].alive()]
        if dead:
            self.log("nodes %s died on their own; restarting them", dead)
            self.restart(dead)
        self.cluster.wait_serving(timeout_s=RECOVERY_TIMEOUT_S)
        self.wait_partitions_serve()

    def wait_in_sync(self, timeout_s=RECOVERY_TIMEOUT_S):
        """Waits until Metadata shows every partition led and with all its replicas in sync;
        returns {partition: replicas}."""
        deadline = time.monotonic() + timeout_s
        while True:
            md = self.metadata(self.topic)
            parts = {} if md is None else md.topics[self.topic].partitions
            behind = {p: (m.leader, list(m.replicas), list(m.isrs)) for p, m in parts.items()
                      if m.leader < 0 or set(m.isrs) != set(m.replicas)}
            if len(parts) == self.args.partitions and not behind:
                return {p: list(m.replicas) for p, m in parts.items()}
            if time.monotonic() > deadline:
                raise RunError("partitions not led with every replica in sync %d s after "
                               "recovery: %s" % (timeout_s, behind or "no metadata"))
            time.sleep(0.1)

    def read_disks(self):
        """Every node's copy of each partition, read from its segment files (the cluster is
        stopped): {node: [[partition, offset, value, producer id, producer epoch], ...]}."""
        out = {}
        for i, b in self.cluster.nodes.items():
            out[i] = []
            for p in range(self.args.partitions):
                for o, v, pid, epoch in read_partition(b.data_dir, self.topic, p) or []:
                    out[i].append([p, o, v.decode(), pid, epoch])
        return out

    # --- the final read ---

    def read_all(self):
        """Every partition from offset 0 to its high watermark, through its leader. A partition
        is done when the client reports end of partition at or past that watermark (its fetch
        position, which also moves past control batches no consumer is given)."""
        c = Consumer(client_config({
            "bootstrap.servers": self.bootstrap, "group.id": "chaos-final",
            "enable.auto.commit": False, "enable.partition.eof": True,
            "auto.offset.reset": "error"}))
        final, ends, errors = [], {}, []
        try:
            # A client created right after restarts can keep answering "unknown partition"
            # (librdkafka): each attempt asks through a new one.
            deadline = time.monotonic() + RECOVERY_TIMEOUT_S
            while len(ends) < self.args.partitions:
                probe = Consumer(client_config({"bootstrap.servers": self.bootstrap,
                                                "group.id": "chaos-final-ends"}))
                try:
                    for p in range(self.args.partitions):
                        if p not in ends:
                            _, ends[p] = probe.get_watermark_offsets(
                                TopicPartition(self.topic, p), timeout=5)
                except KafkaException as e:
                    errors.append(str(e))
                    if time.monotonic() > deadline:
                        raise RunError("final read: no high watermark for every partition in "
                                       "%d s (%s)" % (RECOVERY_TIMEOUT_S, errors[-1]))
                finally:
                    retire(probe)
            c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING)
                      for p in range(self.args.partitions)])
            todo = {p for p in ends if ends[p] > 0}
            deadline = time.monotonic() + RECOVERY_TIMEOUT_S
            while todo:
                if time.monotonic() > deadline:
                    raise RunError("final read: partitions %s not read to their ends %s in "
                                   "%d s (errors %s)" % (sorted(todo), ends,
                                                         RECOVERY_TIMEOUT_S, errors[:5]))
                for m in c.consume(num_messages=1000, timeout=0.5):
                    err = m.error()
                    if err is None:
                        final.append([m.partition(), m.offset(), m.value().decode()])
                        if m.offset() + 1 >= ends[m.partition()]:
                            todo.discard(m.partition())
                    elif err.code() == KafkaError._PARTITION_EOF:
                        if m.offset() >= ends[m.partition()]:
                            todo.discard(m.partition())
                    else:
                        errors.append(err.name())
        finally:
            retire(c)
        return final, ends

    # --- the run ---

    def run(self):
        args = self.args
        self.log("seed %d: %d faults, %d partitions, replication.factor %d, "
                 "min.insync.replicas %d, binary %s", args.seed, args.faults, args.partitions,
                 args.rf, args.min_insync, CHRONIK_BIN)
        self.cluster.start()
        self.log("cluster serving (controller %s)", self.controller())
        self.create_topic()
        self.log("topic %s serving", self.topic)
        producers = Producers(self.bootstrap, self.topic, args.partitions, args.producers,
                              args.rate, args.seed, args.idempotence)
        consumers = Consumers(self.bootstrap, self.topic, args.partitions, args.consumers,
                              self.log.t0)
        producers.start()
        consumers.start()
        consumers.wait_reading()
        self.log("every consumer reads every partition")
        if args.kinds:
            kinds, weights = args.kinds, [1] * len(args.kinds)
        else:
            kinds, weights = [k for k, _ in FAULTS], [w for _, w in FAULTS]
        end_by = None if args.duration_s is None else time.monotonic() + args.duration_s
        done = 0
        try:
            while done < args.faults and (end_by is None or time.monotonic() < end_by):
                time.sleep(self.rng.uniform(args.gap_s_min, args.gap_s_max))
                kind = self.rng.choices(kinds, weights)[0]
                self.inject(kind)
                done += 1
            self.log("%d faults done; healing and restarting everything", done)
            self.recover()
            self.log("every partition serves; draining producers")
            producers.stop()
            consumers.wait_caught_up(producers.acks)
            self.log("every consumer read up to the last acknowledged records")
        finally:
            producers.stop()
            consumers.stop()
        self.log("sent %d, acknowledged %d, failed sends %s; consumer errors %s",
                 producers.sent, len(producers.acks), dict(producers.errors) or "none",
                 dict(consumers.errors) or "none")
        assignment = self.wait_in_sync()
        self.log("every partition led, all replicas in sync: %s", assignment)
        final, ends = self.read_all()
        self.log("final read: %d records, high watermarks %s", len(final), ends)
        return {
            "seed": args.seed,
            "idempotence": args.idempotence,
            "faults": self.log.events,
            "acks": producers.acks,
            "reads": consumers.reads,
            "watermarks": consumers.marks,
            "consumer_errors": consumers.error_log,
            "final": final,
            "final_end": ends,
            "assignment": assignment,
        }

    def close(self):
        for i in list(self.paused):
            os.kill(self.cluster.nodes[i].pid, signal.SIGCONT)
        self.paused.clear()
        try:
            for b in self.cluster.nodes.values():
                if b.alive():
                    b.stop()
        finally:
            self.proxy.close()


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faults", type=int, default=None,
                    help="faults to inject (default 10, unbounded with --duration-s)")
    ap.add_argument("--duration-s", type=float, default=None,
                    help="stop injecting after this long")
    ap.add_argument("--rf", type=int, default=3, help="replication.factor of the topic")
    ap.add_argument("--min-insync", type=int, default=2, help="its min.insync.replicas")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=200, help="sends per second per producer")
    ap.add_argument("--idempotence", action="store_true",
                    help="producers with enable.idempotence=true: a value written twice, or a "
                    "writer's values out of send order in a partition, is then a violation")
    ap.add_argument("--gap-s-min", type=float, default=0.5)
    ap.add_argument("--gap-s-max", type=float, default=2.0)
    ap.add_argument("--hold-s-min", type=float, default=1.0)
    ap.add_argument("--hold-s-max", type=float, default=4.0)
    ap.add_argument("--kinds", type=lambda text: text.split(","), default=None,
                    help="draw only these fault kinds, evenly (comma-separated): %s" % ", ".join(
                        [k for k, _ in FAULTS] + list(ON_REQUEST)))
    ap.add_argument("--broker-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting for every node (--set KEY=VALUE), repeatable")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory")
    ap.add_argument("--dir", help="the run's directory (default: a new temporary one)")
    ap.add_argument("--client-abort-reruns", type=int, default=0, metavar="N",
                    help="run in a child process, and again (up to N more times) when librdkafka "
                    "aborted that process (%s...) before a verdict: the client library's "
                    "defect, not the broker's" % CLIENT_ABORT)
    args = ap.parse_args(argv)
    unknown = set(args.kinds or ()) - {k for k, _ in FAULTS} - set(ON_REQUEST)
    if unknown:
        ap.error("unknown fault kinds: %s" % ", ".join(sorted(unknown)))
    if args.client_abort_reruns > 0 and args.dir:
        ap.error("--client-abort-reruns runs each attempt in a new directory: leave out --dir")
    if args.faults is None:
        args.faults = sys.maxsize if args.duration_s is not None else 10
    return args


def rerun_client_aborts(cmd, reruns):
    """Runs cmd (this script without reruns: its nodes die with it) and returns 0 when it exits
    0, else 1; runs it again, at most reruns more times, when librdkafka's assertion aborted it.
    Any other end, a verdict or another crash, is final."""
    attempt = 0
    while True:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 bufsize=1)
        client_abort = False
        for line in child.stdout:
            sys.stdout.write(line)
            client_abort = client_abort or CLIENT_ABORT in line
        rc = child.wait()
        if not (rc == -signal.SIGABRT and client_abort) or attempt == reruns:
            return 0 if rc == 0 else 1
        attempt += 1
        print("chaos: librdkafka aborted the run's process before a verdict (its issue 3608); "
              "running it again, %d of %d" % (attempt, reruns), flush=True)


def main(argv):
    args = parse_args(argv)
    if args.client_abort_reruns > 0:
        # The last occurrence of an option wins: the child runs once.
        return rerun_client_aborts([sys.executable, os.path.abspath(__file__)] + argv +
                                   ["--client-abort-reruns", "0"], args.client_abort_reruns)
    root = args.dir or tempfile.mkdtemp(prefix="chronik-chaos-%d-" % args.seed)
    os.makedirs(root, exist_ok=True)
    log = Log()
    handler = logging.FileHandler(os.path.join(root, "clients.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    CLIENT_LOG.addHandler(handler)
    renumber = RenumberLog()
    CLIENT_LOG.addHandler(renumber)
    CLIENT_LOG.setLevel(logging.DEBUG if args.idempotence else logging.INFO)
    chaos = Chaos(args, root, log)
    history = None
    ok = False
    try:
        history = chaos.run()
    except RunError as e:
        log("run failed: %s", e)
    finally:
        try:
            chaos.close()
        except Exception as e:
            log("stopping the cluster failed: %s", e)
            history = history and dict(history, stop_error=str(e))
    if history is not None and "stop_error" not in history:
        try:
            history["replicas"] = chaos.read_disks()
            log("read every replica from disk: %s", {
                i: len(rs) for i, rs in history["replicas"].items()})
        except (DiskLogError, OSError, UnicodeDecodeError) as e:
            log("reading the replicas from disk failed: %s", e)
            history["stop_error"] = str(e)
    if history is not None:
        history["faults"] = log.events
        history["client_renumbered"] = list(renumber.ended)
        with open(os.path.join(root, "history.json"), "w") as f:
            json.dump(history, f)
        result = check(history)
        print("chaos: seed=%d faults=%d %s" % (args.seed, chaos.injected, result.summary()))
        for line in result.first_violations():
            print("  " + line)
        ok = result.ok and "stop_error" not in history
    else:
        print("chaos: seed=%d run did not finish -> FAILED" % args.seed)
    if ok and not args.keep and not args.dir:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print("run directory (node logs, history.json): %s" % root)
    return 0 if ok else 1


if __name__ == "__main__":
    rc = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
