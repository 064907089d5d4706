#!/usr/bin/python3
"""The exactly-once benchmark (issue 11): in one run against the same fresh node (or 3-node
cluster), with confluent-kafka (librdkafka) producers sending RECORDS records (TXN_TOTAL in the
transactional mode) of RECORD_SIZE bytes to a topic of PARTITIONS partitions:

1. plain: acks=all, enable.idempotence=false;
2. idempotent: acks=all, enable.idempotence=true (target: within 5% of plain's throughput);
3. transactional: transactional.id set, a transaction per TXN_RECORDS records (100 by default),
   committed before the next begins, so each commit's markers are on the critical path.

Every mode gets its own topic and the same load, in the order plain, idempotent,
transactional, idempotent, plain (the figure of a mode is the mean of its runs, so a node that
warms up or slows down during the run does not favour one). Each run's topic is deleted before
the next run starts (see drop_topic). It prints records/s and MB/s per
run and per mode, the idempotent/plain ratio and the transactional/plain ratio, and checks only
that every record was delivered (a failure ends the run, exit status 1). Not part of the test
suite.

    /usr/bin/python3 bench/transactions/run.py [--nodes 1|3] [--records 1000000]
        [--record-size 1024] [--partitions 8] [--txn-records 100] [--txn-total 100000]
        [--chronik PATH]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TIMEOUT_S = 60
TARGET_IDEMPOTENT_RATIO = 0.95


def fail(what):
    print("FAILED: " + what, file=sys.stderr)
    sys.exit(1)


def create_topic(bootstrap, name, partitions, replication):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, replication)])[name].result(TIMEOUT_S)


def drop_topic(bootstrap, name, root):
    """Deletes the topic and waits until no node has its files any more. A run then starts with
    the page cache the last one freed: on a virtual machine, page-cache pages never touched
    before cost a host fault each, and a run that writes into them is several times slower
    (measured: 160 MB/s in a cluster's first run, 50 MB/s in its fifth, 150 MB/s again once the
    earlier topics were deleted). Without this, the order of the runs decides the ratios."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([name])[name].result(TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while any(name in entry for _, dirs, _ in os.walk(root) for entry in dirs):
        if time.monotonic() > deadline:
            fail("the files of deleted topic %s are still there after %d s" % (name, TIMEOUT_S))
        time.sleep(0.1)


def run_mode(bootstrap, mode, topic, args):
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
            "queue.buffering.max.messages": 1000000, "enable.idempotence": mode != "plain"}
    if mode == "transactional":
        conf["transactional.id"] = "bench-" + topic
    p = Producer(conf)
    failed = []

    def report(err, _msg):
        if err is not None:
            failed.append(err)

    payload = os.urandom(args.record_size)
    # Warm-up, not timed: a record to every partition, delivered, so the clock starts with the
    # metadata known, every leader connected and the producer id (and for the transactional
    # mode the coordinator) found. Otherwise a run pays librdkafka's start (up to a second:
    # its first topic scan), which on runs of a few seconds decides the ratios.
    if mode == "transactional":
        p.init_transactions(TIMEOUT_S)
        p.begin_transaction()
    for partition in range(args.partitions):
        p.produce(topic, payload, partition=partition, on_delivery=report)
    if mode == "transactional":
        p.commit_transaction(TIMEOUT_S)
    if p.flush(TIMEOUT_S) != 0:
        fail("%s: warm-up records still undelivered after %d s" % (mode, TIMEOUT_S))
    records = args.txn_total if mode == "transactional" else args.records
    start = time.monotonic()
    sent = 0
    while sent < records:
        n = min(args.txn_records, records - sent) if mode == "transactional" else records
        if mode == "transactional":
            p.begin_transaction()
        for i in range(n):
            while True:
                try:
                    p.produce(topic, payload, partition=(sent + i) % args.partitions,
                              on_delivery=report)
                    break
                except BufferError:
                    p.poll(0.01)
            if i % 1000 == 0:
                p.poll(0)
        if mode == "transactional":
            p.commit_transaction(TIMEOUT_S)
        sent += n
    if p.flush(TIMEOUT_S) != 0:
        fail("%s: records still undelivered after %d s" % (mode, TIMEOUT_S))
    elapsed = time.monotonic() - start
    if failed:
        fail("%s: %d records failed, first: %s" % (mode, len(failed), failed[0]))
    return records / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--txn-records", type=int, default=100)
    ap.add_argument("--txn-total", type=int, default=100000)
    ap.add_argument("--chronik", default=os.path.join(REPO, "build", "release", "chronik"))
    args = ap.parse_args()
    os.environ["CHRONIK_BIN"] = args.chronik
    from cluster_harness import Cluster
    from conftest import Broker

    root = tempfile.mkdtemp(prefix="chronik-bench-txn-")
    try:
        if args.nodes == 1:
            node = Broker(os.path.join(root, "data")).start()
            bootstrap, stop, rf = node.bootstrap, node.stop, 1
        else:
            c = Cluster(root, 3).start()
            bootstrap, stop, rf = c.bootstrap(1), c.stop, 3
        try:
            order = ["plain", "idempotent", "transactional", "idempotent", "plain"]
            rates = {}
            for k, mode in enumerate(order):
                topic = "bench-%s-%d" % (mode, k)
                create_topic(bootstrap, topic, args.partitions, rf)
                rate = run_mode(bootstrap, mode, topic, args)
                drop_topic(bootstrap, topic, root)
                rates.setdefault(mode, []).append(rate)
                print("run %d %-13s %9.0f records/s %7.1f MB/s" % (
                    k + 1, mode, rate, rate * args.record_size / 1e6), flush=True)
        finally:
            stop()
        mean = {m: sum(r) / len(r) for m, r in rates.items()}
        print("nodes %d, %d records of %d bytes, %d partitions (replication %d), "
              "%d records per transaction (%d in all)" % (
                  args.nodes, args.records, args.record_size, args.partitions, rf,
                  args.txn_records, args.txn_total))
        for m in ("plain", "idempotent", "transactional"):
            print("%-13s %9.0f records/s %7.1f MB/s" % (m, mean[m],
                                                        mean[m] * args.record_size / 1e6))
        ratio = mean["idempotent"] / mean["plain"]
        print("idempotent/plain %.3f (target >= %.2f: %s)" % (
            ratio, TARGET_IDEMPOTENT_RATIO, "met" if ratio >= TARGET_IDEMPOTENT_RATIO else
            "MISSED"))
        print("transactional/plain %.3f" % (mean["transactional"] / mean["plain"]))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
