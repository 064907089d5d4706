#!/usr/bin/python3
"""The cluster benchmark: a 3-node cluster of real chronik processes on loopback, started with
the documented command line (tests/integration/cluster_harness.py), and three figures of it:

1. failover: ROUNDS times, kill -9 of the current controller (Metadata's controller_id), then
   the time until a surviving node's Metadata names a new controller, and the time until a
   CreateTopics sent to a survivor right after the kill is answered without error; the killed
   node is restarted and every node must serve and agree again before the next round.
2. metadata propagation: ROUNDS CreateTopics through node 2; the time from the CreateTopics
   answer to the topic (all its partitions, each with a leader) being in each node's Metadata.
   Then the same through the controller when node 2 is not it: a node that forwards answers
   only once it applied the change itself, the controller as soon as a majority has it.
3. idle cost: PARTITIONS partitions in topics of 100; once every node's Metadata shows them,
   each process's CPU time (utime + stime from /proc/PID/stat), context switches (all threads)
   and RSS (VmRSS) over IDLE_S seconds without any request.

Polling uses raw Kafka requests over one kept-open socket per node (Metadata v4 with
allow_auto_topic_creation false, CreateTopics v1), every 5 ms: an AdminClient per poll would
cost more than what is measured. It prints figures and checks only what it needs to go on; a
failure ends the run with one line saying what did not happen (exit status 1).

Run with Debian's python (the harness imports confluent_kafka):
    /usr/bin/python3 bench/cluster/run.py [--chronik build/release/chronik]
"""

import argparse
import os
import random
import select
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

POLL_S = 0.005
WAIT_S = 30.0          # the longest any one awaited state may take
TOPIC_PARTITIONS = 100  # partitions per topic of the idle phase
CLK_TCK = os.sysconf("SC_CLK_TCK")

API_METADATA = 3
API_CREATE_TOPICS = 19


class BenchError(Exception):
    pass


def need(cond, what):
    if not cond:
        raise BenchError(what)


# ---- the Kafka wire ----------------------------------------------------------------------

class Reader:
    def __init__(self, data):
        self.d = data
        self.o = 0

    def _take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.o)[0]
        self.o += struct.calcsize(fmt)
        return v

    def i8(self):
        return self._take(">b")

    def i16(self):
        return self._take(">h")

    def i32(self):
        return self._take(">i")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.d[self.o:self.o + n].decode()
        self.o += n
        return s


def metadata_v4_body(topics):
    """topics: None for every topic, else a list of names; never auto-creates."""
    from kafka_wire import i32, string
    if topics is None:
        body = i32(-1)
    else:
        body = i32(len(topics)) + b"".join(string(t) for t in topics)
    return body + b"\x00"


def metadata_v4_answer(payload):
    """-> (controller_id, [broker ids], {topic: (error, partition count, leaders >= 0)})."""
    r = Reader(payload)
    r.i32()  # throttle
    brokers = []
    for _ in range(r.i32()):
        brokers.append(r.i32())
        r.string()
        r.i32()
        r.string()
    r.string()  # cluster id
    controller = r.i32()
    topics = {}
    for _ in range(r.i32()):
        err = r.i16()
        name = r.string()
        r.i8()  # internal
        count = 0
        led = 0
        for _ in range(r.i32()):
            r.i16()
            r.i32()
            leader = r.i32()
            for _ in range(2):  # replicas, isr
                for _ in range(r.i32()):
                    r.i32()
            count += 1
            led += leader >= 0
        topics[name] = (err, count, led)
    return controller, brokers, topics


def create_topics_v1_body(topics, timeout_ms):
    """topics: [(name, partitions)], replication factor 1."""
    from kafka_wire import i16, i32, string
    body = i32(len(topics))
    for name, partitions in topics:
        body += string(name) + i32(partitions) + i16(1) + i32(0) + i32(0)
    return body + i32(timeout_ms) + b"\x00"  # validate_only false


def create_topics_v1_answer(payload):
    """-> {topic: (error code, message)}."""
    r = Reader(payload)
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        out[name] = (r.i16(), r.string())
    return out


class Conn:
    """One socket to one node; requests are answered in order."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.next_id = 1
        self.pending = []

    def send(self, api_key, version, body):
        from kafka_wire import frame, header
        cid = self.next_id
        self.next_id += 1
        self.s.sendall(frame(header(api_key, version, cid) + body))
        self.pending.append(cid)

    def readable(self):
        return bool(select.select([self.s], [], [], 0)[0])

    def receive(self):
        need(self.pending, "an answer to no request")
        size = struct.unpack(">i", self._exact(4))[0]
        payload = self._exact(size)
        cid = struct.unpack(">i", payload[:4])[0]
        need(cid == self.pending.pop(0), "an answer out of order")
        return payload[4:]

    def call(self, api_key, version, body):
        self.send(api_key, version, body)
        return self.receive()

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise ConnectionError("the node closed the connection")
            out += chunk
        return out

    def close(self):
        self.s.close()


# ---- the cluster -------------------------------------------------------------------------

class Bench:
    def __init__(self, cluster):
        self.c = cluster
        self.conns = {}

    def conn(self, i):
        if i not in self.conns:
            self.conns[i] = Conn(self.c.nodes[i].port)
        return self.conns[i]

    def drop(self, i):
        c = self.conns.pop(i, None)
        if c is not None:
            c.close()

    def metadata(self, i, topics=()):
        try:
            return metadata_v4_answer(self.conn(i).call(API_METADATA, 4,
                                                         metadata_v4_body(topics)))
        except OSError:
            self.drop(i)
            raise

    def wait(self, what, cond, timeout_s=WAIT_S):
        deadline = time.monotonic() + timeout_s
        while True:
            for b in self.c.nodes.values():
                if b.proc is not None and not b.alive():
                    raise BenchError("node %d died while waiting until %s:\n%s" % (
                        b.node_id, what, b.stderr_text()))
            try:
                if cond():
                    return
            except OSError:
                pass  # a node still starting or gone: ask again
            if time.monotonic() > deadline:
                raise BenchError("not within %.0f s: %s" % (timeout_s, what))
            time.sleep(POLL_S)

    def agreed(self):
        """Every node serves, lists every node as a broker and names one controller."""
        ids = sorted(self.c.nodes)
        seen = set()
        for i in ids:
            controller, brokers, _ = self.metadata(i)
            if sorted(brokers) != ids or controller not in ids:
                return False
            seen.add(controller)
        return len(seen) == 1

    def controller(self):
        self.wait("every node lists all three brokers and names the same controller",
                  self.agreed)
        return self.metadata(1)[0]

    def create(self, i, topics, timeout_ms=int(WAIT_S * 1000)):
        answer = create_topics_v1_answer(self.conn(i).call(
            API_CREATE_TOPICS, 1, create_topics_v1_body(topics, timeout_ms)))
        for name, (err, msg) in answer.items():
            need(err == 0, "CreateTopics %s through node %d: error %d %s" % (name, i, err, msg))
        return answer


def summary(values_s):
    v = sorted(values_s)
    p90 = v[min(len(v) - 1, max(0, int(round(0.9 * len(v))) - 1))]
    return "median %6.1f ms  p90 %6.1f ms  worst %6.1f ms" % (
        statistics.median(v) * 1e3, p90 * 1e3, v[-1] * 1e3)


# ---- 1. failover -------------------------------------------------------------------------

def failover(bench, rounds):
    print("failover: %d rounds of kill -9 of the controller" % rounds, flush=True)
    elected_s, created_s, restart_s = [], [], []
    for n in range(rounds):
        old = bench.controller()
        survivors = [i for i in sorted(bench.c.nodes) if i != old]
        # Its own connection: answers come in order, and this one waits for a controller.
        creator = Conn(bench.c.nodes[survivors[0]].port)
        bench.c.nodes[old].kill()
        killed = time.monotonic()
        bench.drop(old)
        # Sent at once: the survivor forwards it to whichever controller it can reach.
        topic = "failover-%02d" % n
        creator.send(API_CREATE_TOPICS, 1, create_topics_v1_body([(topic, 1)], int(WAIT_S * 1000)))
        elected = created = None
        new = None
        while elected is None or created is None:
            now = time.monotonic()
            need(now - killed < WAIT_S, "round %d: no new controller%s within %.0f s of the kill" % (
                n + 1, "" if elected is None else " answering CreateTopics", WAIT_S))
            if elected is None:
                for i in survivors:
                    controller = bench.metadata(i)[0]
                    if controller >= 0 and controller != old:
                        elected, new = time.monotonic() - killed, controller
                        break
            if created is None and creator.readable():
                answer = create_topics_v1_answer(creator.receive())
                err, msg = answer[topic]
                if err == 0:
                    created = time.monotonic() - killed
                else:  # refused while there was no controller: try again with another name
                    topic += "r"
                    creator.send(API_CREATE_TOPICS, 1,
                                 create_topics_v1_body([(topic, 1)], int(WAIT_S * 1000)))
            time.sleep(POLL_S)
        creator.close()
        elected_s.append(elected)
        created_s.append(created)
        t0 = time.monotonic()
        bench.c.nodes[old].start()
        bench.c.wait_serving([old])
        bench.controller()
        restart_s.append(time.monotonic() - t0)
        print("  round %2d: killed controller %d, node %d elected after %6.1f ms, "
              "CreateTopics through node %d answered after %6.1f ms" % (
                  n + 1, old, new, elected * 1e3, survivors[0], created * 1e3), flush=True)
    print("  kill -9 -> new controller named by a survivor: %s" % summary(elected_s))
    print("  kill -9 -> CreateTopics through a survivor ok: %s" % summary(created_s))
    print("  restart of the killed node until all agree:   %s" % summary(restart_s), flush=True)


# ---- 2. metadata propagation -------------------------------------------------------------

def propagation(bench, rounds, via, partitions=3):
    print("metadata propagation: %d CreateTopics (%d partitions) through node %d, controller "
          "node %d" % (rounds, partitions, via, bench.controller()), flush=True)
    ids = sorted(bench.c.nodes)
    per_node = {i: [] for i in ids}
    first_poll = {i: 0 for i in ids}  # rounds in which the first Metadata asked showed it
    every = []
    answer_s = []
    phase = random.Random(9)
    for n in range(rounds):
        # A random pause: back to back, each request would start just after the heartbeat that
        # showed the last topic, always at the same point of the controller's 50 ms tick.
        time.sleep(phase.uniform(0, 0.1))
        topic = "propagation-%d-%02d" % (via, n)
        sent = time.monotonic()
        bench.create(via, [(topic, partitions)])
        answered = time.monotonic()
        answer_s.append(answered - sent)
        left = set(ids)
        polls = 0
        while left:
            polls += 1
            need(time.monotonic() - answered < WAIT_S,
                 "%s is not in the Metadata of node(s) %s within %.0f s" % (
                     topic, sorted(left), WAIT_S))
            for i in sorted(left):
                _, _, topics = bench.metadata(i, [topic])
                err, count, led = topics.get(topic, (-1, 0, 0))
                if err == 0 and count == partitions and led == partitions:
                    per_node[i].append(time.monotonic() - answered)
                    first_poll[i] += polls == 1
                    left.discard(i)
            if left:
                time.sleep(POLL_S)
        every.append(max(per_node[i][-1] for i in ids))
    print("  CreateTopics answered after: median %6.1f ms  worst %6.1f ms" % (
        statistics.median(answer_s) * 1e3, max(answer_s) * 1e3))
    print("  then in the Metadata of")
    for i in ids:
        v = per_node[i]
        print("  node %d: median %6.1f ms  worst %6.1f ms  (shown by the first Metadata asked "
              "after the answer in %d of %d)" % (
                  i, statistics.median(v) * 1e3, max(v) * 1e3, first_poll[i], rounds))
    print("  every node: median %6.1f ms  worst %6.1f ms" % (
        statistics.median(every) * 1e3, max(every) * 1e3), flush=True)


# ---- 3. idle cost ------------------------------------------------------------------------

def proc_sample(pid):
    """-> (cpu ticks, context switches of every thread, VmRSS KiB, threads, open fds)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    switches = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if "ctxt_switches:" in line:  # voluntary and nonvoluntary
                        switches += int(line.split()[1])
        except FileNotFoundError:
            pass  # a thread that just ended
    rss = 0
    threads = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return ticks, switches, rss, threads, len(os.listdir("/proc/%d/fd" % pid))


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def idle_window(bench, seconds, label):
    ids = sorted(bench.c.nodes)
    pids = {i: bench.c.nodes[i].pid for i in ids}
    first = {i: proc_sample(pids[i]) for i in ids}
    rss_max = {i: first[i][2] for i in ids}
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        for i in ids:
            need(bench.c.nodes[i].alive(), "node %d died while idling" % i)
            rss_max[i] = max(rss_max[i], proc_sample(pids[i])[2])
    elapsed = time.monotonic() - t0
    last = {i: proc_sample(pids[i]) for i in ids}
    print("  %s, %.0f s without requests:" % (label, elapsed))
    tot_cpu = tot_sw = tot_rss = 0
    for i in ids:
        cpu_s = (last[i][0] - first[i][0]) / CLK_TCK
        sw = (last[i][1] - first[i][1]) / elapsed
        tot_cpu += cpu_s
        tot_sw += sw
        tot_rss += last[i][2]
        print("    node %d: CPU %5.2f s = %5.2f%% of a core, %6.0f context switches/s, "
              "RSS %6.1f MiB (start %6.1f, max %6.1f), %d threads, %d fds" % (
                  i, cpu_s, 100 * cpu_s / elapsed, sw, last[i][2] / 1024, first[i][2] / 1024,
                  rss_max[i] / 1024, last[i][3], last[i][4]))
    print("    total:  CPU %5.2f s = %5.2f%% of a core, %6.0f context switches/s, "
          "RSS %6.1f MiB" % (tot_cpu, 100 * tot_cpu / elapsed, tot_sw, tot_rss / 1024),
          flush=True)


def idle_cost(bench, partitions, idle_s):
    ids = sorted(bench.c.nodes)
    print("idle cost: 3 nodes, %d partitions" % partitions, flush=True)
    idle_window(bench, min(10, idle_s), "before (a few topics only)")
    layout = []
    left = partitions
    while left > 0:
        layout.append(("idle-%03d" % len(layout), min(left, TOPIC_PARTITIONS)))
        left -= layout[-1][1]
    t0 = time.monotonic()
    for n, (name, count) in enumerate(layout):
        bench.create(ids[n % len(ids)], [(name, count)])
    created = time.monotonic() - t0

    def everywhere():
        for i in ids:
            _, _, topics = bench.metadata(i, None)
            for name, count in layout:
                err, have, led = topics.get(name, (-1, 0, 0))
                if err != 0 or have != count or led != count:
                    return False
        return True

    bench.wait("every node's Metadata shows all %d partitions with a leader" % partitions,
               everywhere)
    shown = time.monotonic() - t0
    print("  %d topics of %d partitions created in %.2f s (round robin over the nodes), in "
          "every node's Metadata after %.2f s" % (len(layout), TOPIC_PARTITIONS, created, shown))
    print("  data directories: %s" % ", ".join(
        "node %d %.1f MiB" % (i, dir_bytes(bench.c.nodes[i].data_dir) / 2**20) for i in ids),
        flush=True)
    idle_window(bench, idle_s, "with %d partitions" % partitions)


# ---- main --------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chronik", default=os.path.join(REPO, "build", "release", "chronik"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--partitions", type=int, default=3000)
    ap.add_argument("--idle-s", type=float, default=30.0)
    ap.add_argument("--data-root", default=os.environ.get(
        "DATA_ROOT", os.path.join(REPO, "build", "bench-data")))
    ap.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    args = ap.parse_args()
    chronik = os.path.realpath(args.chronik)
    if not os.access(chronik, os.X_OK):
        print("run.py: %s is not an executable" % chronik, file=sys.stderr)
        return 2
    os.environ["CHRONIK_BIN"] = chronik  # read by the harness when imported
    from cluster_harness import Cluster
    os.makedirs(args.data_root, exist_ok=True)
    root = tempfile.mkdtemp(prefix="cluster.", dir=args.data_root)
    print("chronik %s, 3 nodes on 127.0.0.1, data under %s" % (chronik, root), flush=True)
    cluster = Cluster(root, 3)
    status = 0
    try:
        t0 = time.monotonic()
        cluster.start()
        bench = Bench(cluster)
        bench.controller()
        print("cluster formed and agreed in %.2f s" % (time.monotonic() - t0), flush=True)
        failover(bench, args.rounds)
        propagation(bench, args.rounds, 2)
        controller = bench.controller()
        if controller != 2:
            # Through the controller itself the answer does not wait for any other node, so
            # the others' lag (the commit reaching them) shows.
            propagation(bench, args.rounds, controller)
        idle_cost(bench, args.partitions, args.idle_s)
    except Exception as e:  # noqa: BLE001 -- one line, then the logs to look at
        print("run.py: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        print("run.py: node logs are under %s" % root, file=sys.stderr)
        args.keep = True
        status = 1
    finally:
        try:
            cluster.stop()
        except Exception as e:  # noqa: BLE001
            print("run.py: stopping the cluster: %s" % e, file=sys.stderr)
            args.keep = True
            status = 1
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
