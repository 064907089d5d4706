#!/usr/bin/python3
"""The replication benchmark (issue 10): real chronik processes on loopback, started with the
documented command line (tests/integration/cluster_harness.py), and three figures:

1. throughput: the same load (1 KiB records, acks=all, 8 partitions, chronik-bench) on a single
   node and on a 3-node cluster with replication factor RF: MB/s and p50/p99 latency at full
   speed, then at half of each one's measured full speed (rate-limited), and the brokers' CPU
   (utime + stime of every broker process, /proc/PID/stat) per GB acknowledged; then the
   cluster's MB/s as a share of the single node's (target >= 35%).
2. failover: KILLS times, a producer sending to one partition at a steady rate (acks=all),
   kill -9 of that partition's leader, and the time from the kill to the first delivery report
   without error of a record sent after the kill (the dead leader cannot have acknowledged it,
   so a live leader did); the killed node is restarted and every node's Metadata must show the
   partition with a leader and every replica in its ISR before the next round. Median and p99
   (target p99 < 1 s). With RF 1 there is no other replica to take over: the node is restarted
   at once and the figure includes its restart.
3. idle cost: PARTITIONS partitions with replication factor RF in topics of 100 on 3 nodes,
   then IDLE_S seconds without requests: per node RSS, replicas hosted, bytes per replica
   ((RSS - RSS of the same node before any topic) / replicas it hosts; target < 64 KiB) and CPU
   as a share of one core (target < 5%).

It prints figures and checks only what it needs to go on; a failure ends the run with one line
saying what did not happen (exit status 1). Missed targets are printed, not a failure.

Run with Debian's python (the harness imports confluent_kafka):
    /usr/bin/python3 bench/replication/run.py [--part all] [--rf 3] [--quick]
"""

import argparse
import json
import logging
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

NODES = 3
POLL_S = 0.005         # producer poll granularity of the failover load
CHECK_S = 0.05         # between Metadata checks while waiting for a state
WAIT_S = 60.0          # the longest any one awaited state may take
STABLE_S = 1.0         # how long a partition's leader must be unchanged before it is killed
TOPIC_PARTITIONS = 100  # partitions per topic of the idle phase
# Topics per CreateTopics request of the idle phase: one, as a user creates them; one request
# of 10 topics of 100 partitions has made the controller lose its leadership (so it is not a
# figure of the idle cost).
CREATE_BATCH = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
KIB = 1024
TARGET_RATIO = 0.35
TARGET_FAILOVER_P99_S = 1.0
TARGET_REPLICA_BYTES = 64 * KIB
TARGET_IDLE_CPU = 0.05


class BenchError(Exception):
    pass


def need(cond, what):
    if not cond:
        raise BenchError(what)


def cpu_ticks(pid):
    """utime + stime of every thread of pid: fields 14 and 15, counted after the ')' of
    field 2 (the command may contain spaces)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def proc_status(pid):
    """-> (VmRSS KiB, threads, open fds)."""
    rss = threads = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads, len(os.listdir("/proc/%d/fd" % pid))


def quiet_logger():
    """For librdkafka's log lines: connections to killed or stopping nodes fail on purpose."""
    log = logging.getLogger("run.py.librdkafka")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
        log.propagate = False
    return log


def metadata_leader(port, topic):
    """Partition 0's leader of topic as the node on port answers Metadata v4 (one short raw
    connection: cheap enough to ask every CHECK_S beside a running producer), or None."""
    from kafka_wire import exchange, metadata_v4, metadata_v4_leaders
    try:
        kind, payload = exchange(port, metadata_v4(1, [topic]))
    except OSError:
        return None
    if kind != "response":
        return None
    err, leader = metadata_v4_leaders(payload, 1).get((topic, 0), (-1, -1))
    return leader if err == 0 else None


def percentile(values, p):
    """Nearest rank: the smallest value with at least a share p of the values at or below it
    (over 20 values, p99 is the largest)."""
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(p * len(v) - 1e-9) - 1))]


def met(ok):
    return "met" if ok else "MISSED"


def target(args, text, ok):
    """Prints nothing; keeps one line for the summary at the end of the run."""
    args.targets.append("%-6s %s" % (met(ok), text))


# ---- brokers -----------------------------------------------------------------------------

class Nodes:
    """A single node (n = 1, no voter list) or a cluster of n voters, all started and
    serving; stop() ends them with SIGTERM."""

    def __init__(self, root, n, extra_args=()):
        from cluster_harness import Cluster
        from conftest import Broker
        self.cluster = None
        self.admin = None
        self.retries = {}  # CreateTopics errors asked again, by name
        self.down = set()  # killed by the bench, not yet restarted
        if n == 1:
            self.nodes = {1: Broker(os.path.join(root, "node1"))}
            self.nodes[1].node_id = 1
            self.nodes[1].start()
        else:
            self.cluster = Cluster(root, n, extra_args).start()
            self.nodes = self.cluster.nodes
            self.wait("every node lists all %d brokers and names the same controller" % n,
                      self.agreed)

    @property
    def bootstrap(self):
        return ",".join(self.nodes[i].bootstrap for i in sorted(self.nodes))

    def pids(self):
        return [b.pid for b in self.nodes.values() if b.alive()]

    def cpu_ticks(self):
        return sum(cpu_ticks(pid) for pid in self.pids())

    def kill(self, node_id):
        """kill -9 of a node, which is then down on purpose until launch(node_id)."""
        self.nodes[node_id].kill()  # SIGKILL first, then it reaps the process
        self.down.add(node_id)

    def launch(self, node_id):
        """Restarts a killed node on its ports and data directory, without waiting."""
        self.nodes[node_id].launch()
        self.down.discard(node_id)

    def check_alive(self, what):
        for b in self.nodes.values():
            if b.node_id not in self.down and b.proc is not None and not b.alive():
                raise BenchError("node %d died (exit status %d) while %s; its stderr ends:\n%s"
                                 % (b.node_id, b.proc.returncode, what,
                                    b.stderr_text()[-2000:]))

    def wait(self, what, cond, timeout_s=WAIT_S, pump=None):
        """Checks cond every CHECK_S (running pump(seconds) in between when given, else
        sleeping) until it holds; BenchError after timeout_s or when a node dies."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive("waiting until " + what)
            try:
                if cond():
                    return
            except Exception as e:  # noqa: BLE001 -- a node starting or gone: ask again
                if "KafkaException" not in type(e).__name__ and not isinstance(e, OSError):
                    raise
            if time.monotonic() > deadline:
                raise BenchError("not within %.0f s: %s" % (timeout_s, what))
            if pump is None:
                time.sleep(CHECK_S)
            else:
                pump(CHECK_S)

    def metadata(self, node_id, topic=None):
        """Metadata as node node_id answers it (confluent_kafka ClusterMetadata), or None when
        the node does not serve yet or another node answered."""
        from cluster_harness import serving
        from confluent_kafka.admin import AdminClient
        if not self.nodes[node_id].alive() or not serving(self.nodes[node_id].port):
            return None
        admin = AdminClient({"bootstrap.servers": self.nodes[node_id].bootstrap,
                             "logger": quiet_logger()})
        md = admin.list_topics(topic=topic, timeout=5)
        return md if md.orig_broker_id == node_id else None

    def agreed(self):
        ids = sorted(self.nodes)
        controllers = set()
        for i in ids:
            md = self.metadata(i)
            if md is None or sorted(md.brokers) != ids or md.controller_id not in ids:
                return False
            controllers.add(md.controller_id)
        return len(controllers) == 1

    def in_sync(self, topics):
        """Every node's Metadata shows every partition of topics ({name: count}) with a leader
        and every replica in the ISR, and all name the same leaders. -> {(topic, partition):
        leader}, or None while that is not so."""
        agreed = None
        for i in sorted(self.nodes):
            md = self.metadata(i)
            if md is None:
                return None
            leaders = {}
            for name, count in topics.items():
                t = md.topics.get(name)
                if t is None or t.error is not None or len(t.partitions) != count:
                    return None
                for p in t.partitions.values():
                    if p.leader < 0 or sorted(p.isrs) != sorted(p.replicas):
                        return None
                    leaders[(name, p.id)] = p.leader
            if agreed is not None and leaders != agreed:
                return None
            agreed = leaders
        return agreed

    def out_of_isr(self, topic, node_id):
        """Some live node's Metadata shows partition 0 of topic without node_id in its ISR."""
        for i in sorted(self.nodes):
            if i in self.down:
                continue
            md = self.metadata(i, topic)
            t = None if md is None else md.topics.get(topic)
            if t is not None and t.error is None and 0 in t.partitions and \
                    node_id not in t.partitions[0].isrs:
                return True
        return False

    def create(self, topics, rf):
        """topics: [(name, partitions)], created in one CreateTopics request; the topics
        refused with a retriable error (the controller moved, a timeout, a lost connection)
        are asked again, each error counted in self.retries, until WAIT_S has passed. A topic
        found to exist counts as created (a retried request's first attempt may have created
        it); the caller checks the partitions in Metadata."""
        from confluent_kafka import KafkaError
        from confluent_kafka.admin import AdminClient, NewTopic
        # What a person would try again: the controller moved, or the request or its
        # connection was lost on the way.
        retried = (KafkaError.NOT_CONTROLLER, KafkaError.REQUEST_TIMED_OUT,
                   KafkaError._TIMED_OUT, KafkaError._TRANSPORT)
        if self.admin is None:
            self.admin = AdminClient({"bootstrap.servers": self.bootstrap,
                                      "logger": quiet_logger()})
        deadline = time.monotonic() + WAIT_S
        left = list(topics)
        while left:
            futures = self.admin.create_topics([NewTopic(n, p, rf) for n, p in left],
                                               operation_timeout=WAIT_S, request_timeout=WAIT_S)
            again = []
            for name, count in left:
                try:
                    futures[name].result()
                except Exception as e:  # noqa: BLE001
                    err = e.args[0] if e.args else None
                    if not isinstance(err, KafkaError):
                        raise
                    if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                        continue
                    self.check_alive("creating topics")
                    if not (err.retriable() or err.code() in retried) or \
                            time.monotonic() > deadline:
                        raise BenchError("CreateTopics %s (replication factor %d): %s" % (
                            name, rf, e))
                    self.retries[err.name()] = self.retries.get(err.name(), 0) + 1
                    again.append((name, count))
            left = again
            if left:
                time.sleep(CHECK_S)

    def stop(self, timeout_s=WAIT_S):
        """SIGTERM to every node at once (a node's shutdown time grows with the partitions it
        hosts); -> {node: seconds from the signal to its exit}. BenchError when one does not
        exit cleanly within timeout_s; it is then killed."""
        failed = ["node %d had died (exit status %d); its stderr ends:\n%s" % (
            b.node_id, b.proc.returncode, b.stderr_text()[-2000:])
            for b in self.nodes.values()
            if b.node_id not in self.down and b.proc is not None and not b.alive()]
        t0 = time.monotonic()
        running = [b for b in self.nodes.values() if b.alive()]
        for b in running:
            b.proc.send_signal(signal.SIGTERM)
        took = {}
        for b in running:
            try:
                b.proc.wait(timeout=max(0.1, t0 + timeout_s - time.monotonic()))
            except subprocess.TimeoutExpired:
                b.proc.kill()
                b.proc.wait()
                failed.append("node %d did not exit within %.0f s of SIGTERM" % (b.node_id,
                                                                                 timeout_s))
                continue
            took[b.node_id] = time.monotonic() - t0
            if b.proc.returncode != 0:
                failed.append("node %d exited with %d after SIGTERM:\n%s" % (
                    b.node_id, b.proc.returncode, b.stderr_text()[-2000:]))
        need(not failed, "; ".join(failed))
        return took


# ---- 1. throughput -----------------------------------------------------------------------

def chronik_bench(args, nodes, root, name, topic, rf, rate):
    """One chronik-bench produce run; -> (its JSON produce summary, broker CPU seconds)."""
    cmd = [args.bench, "produce", "--brokers", nodes.bootstrap, "--topic", topic,
           "--partitions", str(args.load_partitions), "--replication-factor", str(rf),
           "--record-size", str(args.record_size), "--acks", "all",
           "--duration", str(args.duration), "--json"]
    if rate:
        cmd += ["--rate", str(rate)]
    before = nodes.cpu_ticks()
    with open(os.path.join(root, name + ".log"), "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
        try:
            out, _ = proc.communicate(timeout=args.duration + 120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # it stops, waits for its reports and summarises
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise BenchError("%s: chronik-bench did not end" % name)
    nodes.check_alive("chronik-bench ran " + name)
    cpu_s = (nodes.cpu_ticks() - before) / CLK_TCK
    try:
        summary = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        with open(os.path.join(root, name + ".log"), "rb") as log:
            last = (log.read().decode("utf-8", "replace").strip().splitlines() or [""])[-1]
        raise BenchError("%s: chronik-bench printed no summary (exit status %d): %s" % (
            name, proc.returncode, last))
    p = summary["produce"]
    need(summary["ok"] and p["failed"] == 0 and p["messages"] > 0,
         "%s: %d records failed or none was acknowledged (chronik-bench exit status %d), "
         "see %s.log" % (name, p["failed"], proc.returncode, os.path.join(root, name)))
    return p, cpu_s


def throughput(args, root):
    print("throughput: %d-byte records, acks=all, %d partitions, %d s per run, chronik-bench "
          "on the same host" % (args.record_size, args.load_partitions, args.duration),
          flush=True)
    header = "  %-32s %8s %9s %9s %9s %11s" % ("", "MB/s", "msg/s", "p50 ms", "p99 ms",
                                               "CPU s/GB")
    print(header, flush=True)
    rows = {}
    for n, rf, label in ((1, 1, "single node"),
                         (NODES, args.rf, "%d nodes, rf %d" % (NODES, args.rf))):
        where = os.path.join(root, "throughput-%d" % n)
        nodes = Nodes(where, n)
        try:
            full = None
            for speed in ("full", "half"):
                rate = 0 if speed == "full" else max(1, int(full[0]["msg_per_s"] / 2))
                name = "%s-%s" % ("single" if n == 1 else "cluster", speed)
                p, cpu_s = chronik_bench(args, nodes, where, name, "load-" + speed, rf, rate)
                gb = p["bytes"] / 1e9
                lat = p["latency_ms"] or {"p50": float("nan"), "p99": float("nan")}
                print("  %-32s %8.2f %9.0f %9.2f %9.2f %11.2f" % (
                    "%s, %s%s" % (label, speed, "" if not rate else " (%d/s)" % rate),
                    p["mb_per_s"], p["msg_per_s"], lat["p50"], lat["p99"], cpu_s / gb),
                    flush=True)
                if speed == "full":
                    full = (p, cpu_s)
            rows[n] = full[0]
        finally:
            nodes.stop()
        # The next run starts as this one did: without this one's files in the page cache (the
        # single node writes several GB, whose reclaim the cluster's writes would pay for).
        if not args.keep:
            shutil.rmtree(where, ignore_errors=True)
    ratio = rows[NODES]["mb_per_s"] / rows[1]["mb_per_s"]
    print("  cluster / single node MB/s: %.1f%% (target >= %.0f%%: %s)" % (
        100 * ratio, 100 * TARGET_RATIO, met(ratio >= TARGET_RATIO)), flush=True)
    target(args, "throughput: cluster (rf %d) %.2f MB/s = %.1f%% of the single node's %.2f MB/s "
           "(>= %.0f%%)" % (args.rf, rows[NODES]["mb_per_s"], 100 * ratio, rows[1]["mb_per_s"],
                            100 * TARGET_RATIO), ratio >= TARGET_RATIO)


# ---- 2. failover -------------------------------------------------------------------------

class Load:
    """A confluent_kafka producer sending records to one partition at a steady rate (acks=all);
    every delivery report is counted, and after watch(t) the first one without error for a
    record sent at or after t is kept. Runs only inside pump(), on the caller's thread."""

    def __init__(self, bootstrap, topic, rate, record_size, settings):
        from confluent_kafka import Producer
        conf = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 0,
            # A record must outlive a leader's restart (RF 1) rather than fail.
            "message.timeout.ms": int(2 * WAIT_S * 1000),
            # The Java client's default; librdkafka's 10 s would measure its own back-off when
            # the killed node is the one that comes back (RF 1).
            "reconnect.backoff.max.ms": 1000,
            "logger": quiet_logger(),
        }
        conf.update(settings)
        self.p = Producer(conf)
        self.topic = topic
        self.value = os.urandom(record_size)
        self.interval_s = 1.0 / rate
        self.next_s = time.monotonic()
        self.acked = 0
        self.failed = 0
        self.errors = {}
        self.watch_from = None
        self.first_ack = None

    def _report(self, err, msg, sent_s):
        now = time.monotonic()
        if err is not None:
            self.failed += 1
            self.errors[err.name()] = self.errors.get(err.name(), 0) + 1
            return
        self.acked += 1
        if self.first_ack is None and self.watch_from is not None and sent_s >= self.watch_from:
            self.first_ack = now

    def watch(self, t):
        self.watch_from = t
        self.first_ack = None

    def pump(self, seconds):
        """Sends what is due and serves delivery reports for the given time."""
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if self.next_s < now - 1.0:
                self.next_s = now  # fell behind (a slow Metadata call): no burst to catch up
            while self.next_s <= now:
                sent = time.monotonic()
                try:
                    self.p.produce(self.topic, self.value, partition=0,
                                   on_delivery=lambda e, m, s=sent: self._report(e, m, s))
                except BufferError:
                    self.failed += 1
                    self.errors["queue full"] = self.errors.get("queue full", 0) + 1
                self.next_s += self.interval_s
            if now >= end:
                return
            self.p.poll(max(0.0, min(self.next_s, end, now + POLL_S) - now))

    def close(self):
        self.p.flush(WAIT_S)


def failover(args, root):
    from cluster_harness import serving
    print("failover: %d kills -9 of the leader of a partition produced to at %d records/s "
          "(acks=all), %d nodes, rf %d" % (args.kills, args.failover_rate, NODES, args.rf),
          flush=True)
    if args.rf < 2:
        print("  rf 1: no replica takes over; the killed node is restarted at once and the "
              "figure includes its restart", flush=True)
    extra = []
    if args.rf >= 2:
        extra = ["--set", "replica.lag.time.max.ms=%d" % args.replica_lag_ms]
    nodes = Nodes(os.path.join(root, "failover"), NODES, extra)
    try:
        topic = "failover"
        nodes.create([(topic, 1)], args.rf)
        nodes.wait("partition 0 of %s has a leader and a full ISR on every node" % topic,
                   lambda: nodes.in_sync({topic: 1}) is not None)
        load = Load(nodes.bootstrap, topic, args.failover_rate, args.record_size,
                    dict(kv.split("=", 1) for kv in args.producer_settings))
        took_s, back_s = [], []
        for n in range(args.kills):
            state = {"leaders": None, "since": 0.0}

            def settled():
                # The same answer for STABLE_S: a leadership that just moved (a new group's
                # hand-over to its preferred replica) reaches Metadata only after a while.
                leaders = nodes.in_sync({topic: 1})
                if leaders is None or leaders != state["leaders"]:
                    state["leaders"], state["since"] = leaders, time.monotonic()
                return leaders is not None and time.monotonic() - state["since"] >= STABLE_S

            nodes.wait("every node names the same leader of partition 0 of %s and a full ISR "
                       "for %.0f s" % (topic, STABLE_S), settled, pump=load.pump)
            old = state["leaders"][(topic, 0)]
            acked = load.acked
            nodes.wait("the producer has a record acknowledged (round %d)" % (n + 1),
                       lambda: load.acked > acked, pump=load.pump)
            victim = nodes.nodes[old]
            killed = time.monotonic()
            load.watch(killed)
            nodes.kill(old)
            serving_s = []
            named_s = []  # rf > 1: a survivor's Metadata names another leader
            survivor = nodes.nodes[min(i for i in nodes.nodes if i != old)]
            if args.rf < 2:
                nodes.launch(old)
                restarted = time.monotonic()

            def look():
                if args.rf < 2 and not serving_s and serving(victim.port):
                    serving_s.append(time.monotonic() - killed)
                if args.rf >= 2 and not named_s:
                    leader = metadata_leader(survivor.port, topic)
                    if leader is not None and leader >= 0 and leader != old:
                        named_s.append(time.monotonic() - killed)

            def acknowledged():
                look()
                return load.first_ack is not None

            nodes.wait("a record sent after the kill of node %d is acknowledged" % old,
                       acknowledged, pump=load.pump)
            took_s.append(load.first_ack - killed)
            shrunk = ""
            if args.rf >= 2:
                # Restarted only once out of the ISR, so that back in the ISR means caught up.
                nodes.wait("node %d is taken out of the ISR of partition 0" % old,
                           lambda: look() or nodes.out_of_isr(topic, old), pump=load.pump)
                shrunk = "; out of the ISR %.1f s after the kill" % (time.monotonic() - killed)
                need(named_s, "round %d: no survivor's Metadata named a new leader" % (n + 1))
                shrunk = " (node %d's Metadata named a new leader after %.0f ms)%s" % (
                    survivor.node_id, named_s[0] * 1e3, shrunk)
                nodes.launch(old)
                restarted = time.monotonic()
            nodes.wait("node %d is back and partition 0 in sync on every node" % old,
                       lambda: nodes.in_sync({topic: 1}) is not None, pump=load.pump)
            back_s.append(time.monotonic() - restarted)
            print("  kill %2d: leader node %d, first acknowledged send after the kill "
                  "%7.1f ms%s%s; back in the ISR %4.1f s after its restart" % (
                      n + 1, old, took_s[-1] * 1e3,
                      " (restarted node serving after %.1f ms)" % (serving_s[0] * 1e3)
                      if serving_s else "", shrunk, back_s[-1]), flush=True)
        p99 = percentile(took_s, 0.99)
        print("  kill -9 -> first acknowledged send: median %.1f ms  p99 %.1f ms  max %.1f ms "
              "(target p99 < %.0f ms: %s)" % (
                  statistics.median(took_s) * 1e3, p99 * 1e3, max(took_s) * 1e3,
                  TARGET_FAILOVER_P99_S * 1e3, met(p99 < TARGET_FAILOVER_P99_S)))
        target(args, "failover (rf %d): kill -9 of the leader -> first acknowledged send: "
               "median %.1f ms, p99 %.1f ms over %d kills (p99 < %.0f ms)" % (
                   args.rf, statistics.median(took_s) * 1e3, p99 * 1e3, len(took_s),
                   TARGET_FAILOVER_P99_S * 1e3), p99 < TARGET_FAILOVER_P99_S)
        print("  restart -> back in the ISR on every node: median %.1f s  max %.1f s" % (
            statistics.median(back_s), max(back_s)))
        load.close()
        print("  records acknowledged %d, failed %d%s" % (
            load.acked, load.failed, "".join(" %s x%d" % kv for kv in sorted(
                load.errors.items()))), flush=True)
    finally:
        nodes.stop()


# ---- 3. idle cost ------------------------------------------------------------------------

def idle_window(nodes, seconds):
    """-> {node: (cpu share of one core, RSS KiB at the end, max RSS KiB, threads, fds)}."""
    ids = sorted(nodes.nodes)
    pids = {i: nodes.nodes[i].pid for i in ids}
    first = {i: cpu_ticks(pids[i]) for i in ids}
    rss_max = {i: proc_status(pids[i])[0] for i in ids}
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - t0))))
        nodes.check_alive("idling")
        for i in ids:
            rss_max[i] = max(rss_max[i], proc_status(pids[i])[0])
    elapsed = time.monotonic() - t0
    out = {}
    for i in ids:
        rss, threads, fds = proc_status(pids[i])
        out[i] = ((cpu_ticks(pids[i]) - first[i]) / CLK_TCK / elapsed, rss,
                  max(rss_max[i], rss), threads, fds)
    return out


def idle_cost(args, root):
    print("idle cost: %d partitions, rf %d, in topics of %d on %d nodes, %.0f s idle" % (
        args.partitions, args.rf, TOPIC_PARTITIONS, NODES, args.idle_s), flush=True)
    nodes = Nodes(os.path.join(root, "idle"), NODES)
    try:
        ids = sorted(nodes.nodes)
        empty = idle_window(nodes, min(10.0, args.idle_s))
        for i in ids:
            print("  node %d without topics: RSS %7.1f MiB, CPU %5.2f%% of a core" % (
                i, empty[i][1] / KIB, 100 * empty[i][0]))
        layout = []
        left = args.partitions
        while left > 0:
            layout.append(("idle-%04d" % len(layout), min(left, TOPIC_PARTITIONS)))
            left -= layout[-1][1]
        t0 = time.monotonic()
        for k in range(0, len(layout), CREATE_BATCH):
            nodes.create(layout[k:k + CREATE_BATCH], args.rf)
        created = time.monotonic() - t0
        nodes.wait("every node's Metadata shows all %d partitions with a leader and a full ISR"
                   % args.partitions, lambda: nodes.in_sync(dict(layout)) is not None,
                   timeout_s=max(WAIT_S, args.partitions / 50))
        print("  %d topics created in %.1f s (%d per CreateTopics%s), in sync in every node's "
              "Metadata after %.1f s" % (
                  len(layout), created, CREATE_BATCH, "".join(
                      "; asked again after %s x%d" % kv for kv in sorted(nodes.retries.items())),
                  time.monotonic() - t0), flush=True)
        hosted = {i: 0 for i in ids}
        md = nodes.metadata(ids[0])
        need(md is not None, "node %d does not answer Metadata" % ids[0])
        for name, _ in layout:
            for p in md.topics[name].partitions.values():
                for r in p.replicas:
                    hosted[r] = hosted.get(r, 0) + 1
        idle = idle_window(nodes, args.idle_s)
        worst_bytes = worst_cpu = 0.0
        for i in ids:
            cpu, rss, rss_max, threads, fds = idle[i]
            per = (rss - empty[i][1]) * KIB / hosted[i] if hosted[i] else float("nan")
            worst_bytes = max(worst_bytes, per if hosted[i] else 0.0)
            worst_cpu = max(worst_cpu, cpu)
            print("  node %d: %5d replicas, RSS %7.1f MiB (max %7.1f), %7.0f bytes per replica, "
                  "CPU %5.2f%% of a core, %d threads, %d fds" % (
                      i, hosted[i], rss / KIB, rss_max / KIB, per, 100 * cpu, threads, fds))
        print("  worst node: %.0f bytes per replica (target < %d: %s), CPU %.2f%% of a core "
              "(target < %.0f%%: %s)" % (
                  worst_bytes, TARGET_REPLICA_BYTES, met(worst_bytes < TARGET_REPLICA_BYTES),
                  100 * worst_cpu, 100 * TARGET_IDLE_CPU, met(worst_cpu < TARGET_IDLE_CPU)),
              flush=True)
        target(args, "idle (%d partitions, rf %d): worst node %.0f bytes per replica (< %d)" % (
            args.partitions, args.rf, worst_bytes, TARGET_REPLICA_BYTES),
            worst_bytes < TARGET_REPLICA_BYTES)
        target(args, "idle (%d partitions, rf %d): worst node %.2f%% of a core (< %.0f%%)" % (
            args.partitions, args.rf, 100 * worst_cpu, 100 * TARGET_IDLE_CPU),
            worst_cpu < TARGET_IDLE_CPU)
    finally:
        took = nodes.stop(timeout_s=max(WAIT_S, args.partitions * args.rf / NODES * 0.05))
    print("  SIGTERM to exit (all nodes signalled at once): %s" % ", ".join(
        "node %d %.1f s" % (i, took[i]) for i in sorted(took)), flush=True)


# ---- main --------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("throughput", "failover", "idle", "all"), default="all")
    ap.add_argument("--rf", type=int, default=3, help="replication factor of the cluster runs")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes (about 2 minutes): --duration 8 --kills 10 "
                         "--partitions 1000 --idle-s 10, unless given")
    ap.add_argument("--chronik", default=os.path.join(REPO, "build", "release", "chronik"))
    ap.add_argument("--bench", default=os.path.join(REPO, "build", "release", "bench", "kafka",
                                                    "chronik-bench"))
    ap.add_argument("--duration", type=int, help="seconds per throughput run (default 20)")
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--load-partitions", type=int, default=8,
                    help="partitions of the throughput topics")
    ap.add_argument("--kills", type=int, help="failover rounds (default 20)")
    ap.add_argument("--failover-rate", type=int, default=1000,
                    help="records per second of the failover producer")
    ap.add_argument("-X", dest="producer_settings", action="append", default=[],
                    metavar="KEY=VALUE", help="a librdkafka property of the failover producer "
                    "(wins over the bench's; repeatable)")
    ap.add_argument("--replica-lag-ms", type=int, default=1000,
                    help="replica.lag.time.max.ms of the failover cluster (rf > 1)")
    ap.add_argument("--partitions", type=int, help="partitions of the idle phase (default 10000)")
    ap.add_argument("--idle-s", type=float, help="seconds of the idle window (default 30)")
    ap.add_argument("--data-root", default=os.environ.get(
        "DATA_ROOT", os.path.join(REPO, "build", "bench-data")))
    ap.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    args = ap.parse_args()
    args.targets = []
    for key, full, quick in (("duration", 20, 8), ("kills", 20, 10), ("partitions", 10000, 1000),
                             ("idle_s", 30.0, 10.0)):
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    if args.rf < 1 or args.rf > NODES:
        ap.error("--rf must be 1..%d" % NODES)
    if any("=" not in kv for kv in args.producer_settings):
        ap.error("-X takes KEY=VALUE")
    args.chronik = os.path.realpath(args.chronik)
    args.bench = os.path.realpath(args.bench)
    for tool in (args.chronik, args.bench):
        if not os.access(tool, os.X_OK):
            print("run.py: %s is not an executable (scripts/build.sh release)" % tool,
                  file=sys.stderr)
            return 2
    os.environ["CHRONIK_BIN"] = args.chronik  # read by the harness when imported
    os.makedirs(args.data_root, exist_ok=True)
    root = tempfile.mkdtemp(prefix="replication.", dir=args.data_root)
    print("chronik %s on 127.0.0.1, data under %s" % (args.chronik, root), flush=True)
    parts = ("throughput", "failover", "idle") if args.part == "all" else (args.part,)
    status = 0
    try:
        for part in parts:
            t0 = time.monotonic()
            {"throughput": throughput, "failover": failover, "idle": idle_cost}[part](args, root)
            print("  (%s took %.0f s)" % (part, time.monotonic() - t0), flush=True)
        print("targets:")
        for line in args.targets:
            print("  " + line)
    except Exception as e:  # noqa: BLE001 -- one line, then the logs to look at
        print("run.py: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        print("run.py: node logs are under %s" % root, file=sys.stderr)
        args.keep = True
        status = 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
