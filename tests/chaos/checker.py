"""The checker of a chaos run's history, in the style of Jepsen's Kafka workload.

It owns the verdict and nothing else: it never talks to a broker, so tests/chaos/test_checker.py
can feed it synthetic histories. A history is a dict (run.py writes it as history.json):
  acks:       [[partition, offset, value], ...]   every send the broker acknowledged; offset
              None when the client acknowledged it without one (librdkafka acknowledges a
              batch whose answer was lost once a later batch of the same idempotent producer
              succeeds: the broker keeps a producer's batches in order)
  reads:      {consumer: [[partition, offset, value], ...]}   in the order each consumer read
  watermarks: {observer: [[partition, high watermark, (seconds)], ...]}  in the order each
              client saw them (a third field, the time, is not checked)
  final:      [[partition, offset, value], ...]   the read of every partition after the run
  final_end:  {partition: the high watermark the final read went up to}
  assignment: {partition: [replica node ids]}
  replicas:   {node: [[partition, offset, value(, producer id, producer epoch)], ...]}   each
              node's copy read from its disk once the cluster stopped (disklog.py), with the
              producer that wrote each record's batch; a partition without a copy is absent
  client_renumbered: [[producer id, producer epoch], ...]   producer epochs that librdkafka
              ended itself, by its own log, after sending a batch ahead of an earlier one that
              had failed (see "renumbered" below)
Values are strings, partitions, offsets and nodes ints (JSON makes dict keys strings; both are
accepted); other keys (the fault log) are not checked. Without replicas and assignment the
replica checks are skipped (the self-test's older histories, a run that could not stop).

Checks (each violation is one line naming what, where and the evidence):
  lost:         an acknowledged (p, offset, value) is not in the final read at that offset
                (without an offset: nowhere in p);
  conflict:     some (p, offset) held two different values across acks, all reads and the final
                read;
  vanished:     a value read during the run at (p, offset) is absent from the final read (the
                log lost or truncated data a consumer had already seen as committed);
  nonmonotonic: a consumer read an offset of a partition not above the one it read before
                (nothing here seeks, so offsets of one consumer only go up);
  hw_back:      a client saw a partition's high watermark lower than one it saw before, and
                its next observation of that partition (if any) was not back at that height.
                A single low observation followed by one at least as high is counted as
                hw_stale, not a violation: a fetch answer the old leader computed before it
                stopped (SIGSTOP) can reach the client after the new leader's answers (the rest
                of a partly written response is sent on SIGCONT), and librdkafka takes the
                watermark of whichever answer it reads last. A server that keeps serving an
                old high watermark shows it twice in a row;
  diverged:     a replica's copy below the final end is not a prefix of the final read (a value
                the leader lacks, or a gap); a copy that is only shorter is a lagging follower;
  under_replicated: an acknowledged record is on fewer replicas' disks than a majority of the
                partition's replicas (acks=all promises a majority; Raft never truncates a
                committed entry, so the copies can only have grown since the ack).
With "idempotence": true in the history (producers with enable.idempotence=true), also:
  duplicated:   one value at several offsets of the final read (a retry written twice);
  reordered:    a writer's values (s<seed>-w<writer>-<n>) in one partition of the final read,
                by offset, not in the order they were sent (n going down).
  Counted instead, as "renumbered": a value written again in its partition by the same
  producer id under a later epoch, when each earlier copy's epoch is one the client ended
  itself (client_renumbered). librdkafka 2.0.2 sends a batch ahead of an earlier one that a
  former leader refused (NOT_LEADER_OR_FOLLOWER), the new leader rightly answers
  OUT_OF_ORDER_SEQUENCE_NUMBER for the gap, and the client bumps its epoch and sends its
  unacknowledged records again under new sequence numbers, written ones included
  (confluentinc/librdkafka issue 4953). A producer's epoch is where Kafka's idempotence ends
  (sequence numbers restart at 0 in a new one), so no broker can tell those copies apart; a
  duplicate within one epoch, or across epochs the client did not end so, stays a violation.
Counted, not violations: duplicates (one value at several offsets: a retried send whose first
attempt was written, allowed with enable.idempotence=false), unacked values found in the log
(sends that failed or timed out for the client but were written), lagging replicas and records
replicas hold past the final end (uncommitted, which a later leader may still commit).
"""

import json
import sys

VIOLATION_KINDS = ("lost", "conflict", "vanished", "nonmonotonic", "hw_back", "diverged",
                   "under_replicated", "duplicated", "reordered")
SHOWN_PER_KIND = 10


class Result:
    def __init__(self):
        self.counts = {}
        self.violations = {k: [] for k in VIOLATION_KINDS}

    @property
    def ok(self):
        return not any(self.violations.values())

    def summary(self):
        c = self.counts
        v = {k: len(found) for k, found in self.violations.items()}
        return ("acked=%d final=%d read=%d lost=%d duplicates=%d duplicated=%d reordered=%d "
                "renumbered=%d unacked_present=%d "
                "conflicts=%d vanished=%d nonmonotonic=%d hw_back=%d hw_stale=%d hw_seen=%d "
                "replica_copies=%d diverged=%d under_replicated=%d lagging=%d replica_tail=%d "
                "-> %s" % (
                    c["acked"], c["final"], c["read"], v["lost"], c["duplicates"],
                    v["duplicated"], v["reordered"], c["renumbered"], c["unacked_present"],
                    v["conflict"], v["vanished"], v["nonmonotonic"],
                    v["hw_back"], c["hw_stale"], c["hw_seen"], c["replica_copies"], v["diverged"],
                    v["under_replicated"], c["lagging"], c["replica_tail"],
                    "OK" if self.ok else "FAILED"))

    def first_violations(self, per_kind=SHOWN_PER_KIND):
        lines = []
        for kind in VIOLATION_KINDS:
            found = self.violations[kind]
            for v in found[:per_kind]:
                lines.append("%s: %s" % (kind, v))
            if len(found) > per_kind:
                lines.append("%s: ... and %d more" % (kind, len(found) - per_kind))
        return lines


def check(history):
    r = Result()
    acks = [tuple(a) for a in history.get("acks", [])]
    reads = {k: [tuple(x) for x in v] for k, v in history.get("reads", {}).items()}
    final = [tuple(x) for x in history.get("final", [])]
    marks = {k: [tuple(x) for x in v] for k, v in history.get("watermarks", {}).items()}
    replicas = {int(k): [tuple(x) for x in v] for k, v in history.get("replicas", {}).items()}

    # Every observation of "offset o of partition p holds v", by source.
    seen = {}

    def observe(p, o, v, source):
        seen.setdefault((p, o), {}).setdefault(v, source)

    for p, o, v in acks:
        if o is not None:
            observe(p, o, v, "ack")
    for name, rs in sorted(reads.items()):
        for p, o, v in rs:
            observe(p, o, v, "read by %s" % name)

    final_at = {}
    for p, o, v in final:
        observe(p, o, v, "final read")
        if (p, o) in final_at and final_at[(p, o)] != v:
            continue  # two values in the final read itself: a conflict, reported below
        final_at[(p, o)] = v
    for node, rs in sorted(replicas.items()):
        for p, o, v, *_ in rs:
            observe(p, o, v, "disk of node %d" % node)

    for (p, o), values in sorted(seen.items()):
        if len(values) > 1:
            r.violations["conflict"].append("p%d offset %d held %s" % (p, o, ", ".join(
                "%r (%s)" % (v, src) for v, src in sorted(values.items()))))

    found_at = {(p, v): o for p, o, v in final}
    for p, o, v in acks:
        if o is None:
            if (p, v) not in found_at:
                r.violations["lost"].append("p%d acknowledged %r (offset unknown), not in the "
                                            "final read" % (p, v))
            continue
        got = final_at.get((p, o))
        if got != v:
            r.violations["lost"].append("p%d offset %d acknowledged %r, final read has %s" % (
                p, o, v, "nothing there" if got is None else repr(got)))

    for name, rs in sorted(reads.items()):
        for p, o, v in rs:
            if (p, o) not in final_at:
                r.violations["vanished"].append("p%d offset %d = %r read by %s, absent from "
                                                "the final read" % (p, o, v, name))

    for name, rs in sorted(reads.items()):
        last = {}
        for i, (p, o, v) in enumerate(rs):
            if p in last and o <= last[p]:
                r.violations["nonmonotonic"].append(
                    "%s read p%d offset %d after offset %d (its read #%d)" % (name, p, o, last[p],
                                                                             i))
            last[p] = o

    hw_seen = 0
    hw_stale = 0
    for name, ms in sorted(marks.items()):
        top = {}
        for i, (p, hw, *_) in enumerate(ms):
            hw_seen += 1
            if p in top and hw < top[p]:
                after = next((m[1] for m in ms[i + 1:] if m[0] == p), None)
                if after is not None and after >= top[p]:
                    hw_stale += 1
                else:
                    r.violations["hw_back"].append(
                        "%s saw p%d high watermark %d after %d (observation #%d)" % (
                            name, p, hw, top[p], i))
            top[p] = max(hw, top.get(p, hw))

    # An acknowledgement without an offset is checked on the replicas where the final read found
    # its value (where it is not, it is lost, reported above).
    placed = [(p, found_at[(p, v)] if o is None else o, v) for p, o, v in acks
              if o is not None or (p, v) in found_at]
    copies, lagging, tail = check_replicas(history, replicas, final_at, placed, r)

    offsets_of = {}
    for p, o, v in final:
        offsets_of.setdefault(v, set()).add((p, o))
    renumbered = 0
    if history.get("idempotence"):
        renumbered = check_idempotence(history, final, offsets_of, replicas, r)
    acked_values = {v for _, _, v in acks}
    r.counts = {
        "acked": len(acks),
        "final": len(final),
        "read": sum(len(rs) for rs in reads.values()),
        "duplicates": sum(1 for locs in offsets_of.values() if len(locs) > 1),
        "renumbered": renumbered,
        "unacked_present": sum(1 for v in offsets_of if v not in acked_values),
        "hw_seen": hw_seen,
        "hw_stale": hw_stale,
        "replica_copies": copies,
        "lagging": lagging,
        "replica_tail": tail,
    }
    return r


def client_renumbered(locs, producer_at, ended):
    """Whether the copies of one value at locs ((partition, offset), in offset order) are the
    client's renumbering (see the module comment): one partition, one producer id, epochs going
    up, and every epoch but the last one the client ended itself."""
    writers = [producer_at.get(loc) for loc in locs]
    if None in writers or len({p for p, _ in locs}) > 1 or len({w[0] for w in writers}) > 1:
        return False
    epochs = [w[1] for w in writers]
    return (all(a < b for a, b in zip(epochs, epochs[1:])) and
            all((writers[0][0], e) in ended for e in epochs[:-1]))


def check_idempotence(history, final, offsets_of, replicas, r):
    """The idempotent producer's promises on the final read (see the module comment); returns
    how many values the client renumbered."""
    producer_at = {}  # (partition, offset) -> (producer id, epoch) of its batch, from the disks
    for rs in replicas.values():
        for p, o, _, *producer in rs:
            if producer:
                producer_at[(p, o)] = tuple(producer)
    ended = {tuple(x) for x in history.get("client_renumbered", [])}
    renumbered = 0
    again = set()  # (partition, offset) of the later copies of renumbered values
    for v, locs in sorted(offsets_of.items()):
        if len(locs) < 2:
            continue
        locs = sorted(locs)
        if client_renumbered(locs, producer_at, ended):
            renumbered += 1
            again.update(locs[1:])
            continue
        r.violations["duplicated"].append("%r written at %s" % (v, ", ".join(
            "p%d offset %d%s" % (p, o, " (producer %d epoch %d)" % producer_at[(p, o)]
                                  if (p, o) in producer_at else "")
            for p, o in locs)))
    last = {}  # (partition, writer) -> (n, offset) of its value read last
    for p, o, v in sorted(final):
        if (p, o) in again:
            continue
        writer, _, n = v.rpartition("-")
        if not writer or not n.isdigit():
            continue
        key = (p, writer)
        if key in last and int(n) < last[key][0]:  # equal: a duplicate, reported as such
            r.violations["reordered"].append(
                "p%d offset %d holds %r after offset %d held %s-%d" % (
                    p, o, v, last[key][1], writer, last[key][0]))
        last[key] = (int(n), o)
    return renumbered


def check_replicas(history, replicas, final_at, acks, r):
    """The replica checks (see the module comment); returns (copies compared, lagging copies,
    records past the final end)."""
    if "assignment" not in history or "replicas" not in history:
        return 0, 0, 0
    assignment = {int(p): [int(n) for n in ns] for p, ns in history["assignment"].items()}
    ends = {int(p): e for p, e in history.get("final_end", {}).items()}
    copy = {}  # (node, partition) -> {offset: value}
    for node, rs in replicas.items():
        for p, o, v, *_ in rs:
            copy.setdefault((node, p), {})[o] = v
    copies = lagging = tail = 0
    for p, nodes in sorted(assignment.items()):
        end = ends.get(p, 0)
        want = {o: v for (q, o), v in final_at.items() if q == p}
        for node in nodes:
            have = copy.get((node, p))
            if have is None:
                if want:
                    r.violations["diverged"].append("node %d holds no copy of p%d" % (node, p))
                continue
            copies += 1
            tail += sum(1 for o in have if o >= end)
            below = {o: v for o, v in have.items() if o < end}
            top = max(below) + 1 if below else 0
            for o in sorted(set(below) - set(want)):
                r.violations["diverged"].append("node %d's p%d has offset %d = %r, which the "
                                                "final read lacks" % (node, p, o, below[o]))
            gaps = sorted(o for o in want if o < top and o not in below)
            for o in gaps:
                r.violations["diverged"].append("node %d's p%d lacks offset %d = %r below its "
                                                "offset %d" % (node, p, o, want[o], top - 1))
            if any(o >= top for o in want):
                lagging += 1
    for p, o, v in acks:
        nodes = assignment.get(p, [])
        on = [n for n in nodes if copy.get((n, p), {}).get(o) == v]
        if len(on) < len(nodes) // 2 + 1:
            r.violations["under_replicated"].append(
                "p%d offset %d = %r acknowledged, on the disks of nodes %s of replicas %s" % (
                    p, o, v, on, nodes))
    return copies, lagging, tail


def main(argv):
    if len(argv) != 2:
        print("usage: checker.py HISTORY.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        result = check(json.load(f))
    print(result.summary())
    for line in result.first_violations():
        print("  " + line)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
