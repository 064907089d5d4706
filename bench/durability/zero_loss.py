#!/usr/bin/python3
"""The zero-loss load test: MESSAGES records produced with acks=all (at RATE records/s, so the
run lasts long enough for many faults) to a 3-node cluster (a
topic of replication factor 3, min.insync.replicas 2) while a partition leader is killed with
SIGKILL and restarted every few seconds; then every acknowledged record is read back at the
offset it was acknowledged with. Prints one line of figures and exits 1 if anything
acknowledged is missing or two records share an offset.

    /usr/bin/python3 bench/durability/zero_loss.py [--messages 1000000] [--rate 20000]
        [--kill-every-s 2] [--chronik build/release/chronik]

Not part of the test suite (it takes minutes); the fault-injection harness in tests/chaos runs
a short version of the same check in CI. The producer retries (librdkafka's defaults, no
idempotence), so a record whose first attempt was written but not acknowledged can appear
twice: duplicates are counted, not errors.
"""

import argparse
import os
import random
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PARTITIONS = 8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000000)
    ap.add_argument("--kill-every-s", type=float, default=2.0)
    ap.add_argument("--rate", type=int, default=20000, help="records/s (0: as fast as possible)")
    ap.add_argument("--chronik", default=os.path.join(REPO, "build", "release", "chronik"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.environ["CHRONIK_BIN"] = os.path.abspath(args.chronik)
    from cluster_harness import Cluster, serving  # reads CHRONIK_BIN at import

    rnd = random.Random(args.seed)
    root = tempfile.mkdtemp(prefix="chronik-zero-loss-")
    c = Cluster(root, 3, extra_args=["--set", "replica.lag.time.max.ms=2000"]).start()
    boot = ",".join(c.bootstrap(n) for n in (1, 2, 3))
    try:
        admin = AdminClient({"bootstrap.servers": boot})
        admin.create_topics([NewTopic("zl", PARTITIONS, 3, config={
            "min.insync.replicas": "2"})])["zl"].result(timeout=30)
        acked = {}
        failed = []

        def report(err, msg):
            if err is None:
                acked[msg.value()] = (msg.partition(), msg.offset())
            else:
                failed.append(str(err))

        # Faults from the producing loop itself (no thread): every --kill-every-s seconds the
        # leader of a random partition is killed, once the node killed before is serving again
        # (its restart is started right after the next interval, so one node is down at a time).
        kills = []
        down = None  # (node, killed at)
        prod = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5,
                         "message.timeout.ms": 300000, "queue.buffering.max.messages": 200000})
        start = time.monotonic()
        next_fault = start + args.kill_every_s
        next_report = start + 5

        def fault(now):
            nonlocal down
            if down is not None:
                node, at = down
                if not c.nodes[node].alive():
                    c.nodes[node].launch()
                if not serving(c.nodes[node].port):
                    return
                down = None
            alive = [n for n in (1, 2, 3) if c.nodes[n].alive()]
            try:
                md = c.metadata(rnd.choice(alive), "zl", timeout_s=5)
            except Exception:
                return
            leader = md.topics["zl"].partitions[rnd.randrange(PARTITIONS)].leader
            if leader in alive:
                c.nodes[leader].kill()
                kills.append((now, leader))
                down = (leader, now)

        i = 0
        while i < args.messages:
            try:
                prod.produce("zl", b"%09d" % i, partition=i % PARTITIONS, on_delivery=report)
                i += 1
            except BufferError:
                prod.poll(0.05)
            if i % 1000 == 0:
                prod.poll(0)
                now = time.monotonic()
                if args.rate > 0 and i / args.rate > now - start:
                    time.sleep(i / args.rate - (now - start))
                if now >= next_fault:
                    fault(now)
                    next_fault = now + args.kill_every_s
                if now >= next_report:
                    print("zero-loss: %.0f s: %d sent, %d acknowledged, %d kills" % (
                        now - start, i, len(acked), len(kills)), file=sys.stderr, flush=True)
                    next_report = now + 5
        while prod.flush(1) > 0:
            now = time.monotonic()
            if down is not None:
                fault(now)  # restart the node still down; kill no more
            if now - start > 900:
                break
        left = len(prod)
        if down is not None and not c.nodes[down[0]].alive():
            c.nodes[down[0]].launch()
        produce_s = time.monotonic() - start

        # Read back every partition from its start, through any node (clients find leaders),
        # once every node serves again. A client created right after restarts can keep an
        # "unknown partition" answer for a while (librdkafka), so each attempt uses a new one.
        c.wait_serving(timeout_s=60)
        ends = {}
        deadline = time.monotonic() + 120
        while len(ends) < PARTITIONS:
            probe = Consumer({"bootstrap.servers": boot, "group.id": "zero-loss-ends"})
            for p in range(PARTITIONS):
                try:
                    ends[p] = probe.get_watermark_offsets(TopicPartition("zl", p), timeout=5)[1]
                except Exception:
                    if time.monotonic() > deadline:
                        raise
            probe.close()
        cons = Consumer({"bootstrap.servers": boot, "group.id": "zero-loss-check",
                         "enable.auto.commit": False, "fetch.max.bytes": 52428800})
        cons.assign([TopicPartition("zl", p, 0) for p in range(PARTITIONS)])
        at = {}
        positions = {p: -1 for p in range(PARTITIONS)}
        deadline = time.monotonic() + 600
        while any(positions[p] < ends[p] - 1 for p in range(PARTITIONS)):
            if time.monotonic() > deadline:
                break
            for m in cons.consume(10000, 1.0):
                if m.error():
                    continue
                key = (m.partition(), m.offset())
                if key in at and at[key] != m.value():
                    print("zero-loss: offset %s holds two values" % (key,))
                    return 1
                at[key] = m.value()
                positions[m.partition()] = m.offset()
        cons.close()
        lost = [v for v, key in acked.items() if at.get(key) != v]
        seen = {}
        for v in at.values():
            seen[v] = seen.get(v, 0) + 1
        dups = sum(n - 1 for n in seen.values() if n > 1)
        print("zero-loss: %d sent, %d acknowledged, %d failed sends, %d unflushed, %d leader "
              "kills in %.0f s of producing (%.0f acknowledged/s); read back %d records: %d "
              "acknowledged missing, %d duplicates" % (
                  args.messages, len(acked), len(failed), left, len(kills), produce_s,
                  len(acked) / produce_s, len(at), len(lost), dups))
        if failed:
            print("zero-loss: first failures: %s" % failed[:3])
        return 1 if lost else 0
    finally:
        c.stop()


if __name__ == "__main__":
    sys.exit(main())
