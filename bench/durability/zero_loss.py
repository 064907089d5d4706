#!/usr/bin/python3
"""The zero-loss load test: MESSAGES records produced with acks=all to a 3-node cluster (a
topic of replication factor 3, min.insync.replicas 2) while a partition leader is killed with
SIGKILL and restarted every few seconds; then every acknowledged record is read back at the
offset it was acknowledged with. Prints one line of figures and exits 1 if anything
acknowledged is missing or two records share an offset.

    /usr/bin/python3 bench/durability/zero_loss.py [--messages 1000000] [--kill-every-s 3]
        [--chronik build/release/chronik]

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
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PARTITIONS = 8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000000)
    ap.add_argument("--kill-every-s", type=float, default=3.0)
    ap.add_argument("--chronik", default=os.path.join(REPO, "build", "release", "chronik"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.environ["CHRONIK_BIN"] = os.path.abspath(args.chronik)
    from cluster_harness import Cluster  # reads CHRONIK_BIN at import

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
        lock = threading.Lock()

        def report(err, msg):
            with lock:
                if err is None:
                    acked[msg.value()] = (msg.partition(), msg.offset())
                else:
                    failed.append(str(err))

        done = threading.Event()
        kills = []

        def killer():
            while not done.wait(args.kill_every_s):
                p = rnd.randrange(PARTITIONS)
                md = c.metadata(rnd.choice([n for n in (1, 2, 3) if c.nodes[n].alive()]), "zl")
                leader = md.topics["zl"].partitions[p].leader
                if leader not in c.nodes or not c.nodes[leader].alive():
                    continue
                c.nodes[leader].kill()
                kills.append((time.monotonic(), leader, p))
                time.sleep(1.0)
                c.nodes[leader].launch()
                c.wait_serving([leader], timeout_s=60)

        prod = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5,
                         "message.timeout.ms": 300000, "queue.buffering.max.messages": 200000})
        t = threading.Thread(target=killer, daemon=True)
        start = time.monotonic()
        t.start()
        for i in range(args.messages):
            while True:
                try:
                    prod.produce("zl", b"%09d" % i, partition=i % PARTITIONS,
                                 on_delivery=report)
                    break
                except BufferError:
                    prod.poll(0.05)
            if i % 1000 == 0:
                prod.poll(0)
        left = prod.flush(600)
        done.set()
        t.join()
        produce_s = time.monotonic() - start

        # Read back every partition from its start, through any node (clients find leaders).
        cons = Consumer({"bootstrap.servers": boot, "group.id": "zero-loss-check",
                         "enable.auto.commit": False, "fetch.max.bytes": 52428800})
        ends = {}
        for p in range(PARTITIONS):
            ends[p] = cons.get_watermark_offsets(TopicPartition("zl", p), timeout=30)[1]
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
