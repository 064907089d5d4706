"""The checker of a chaos run's history, in the style of Jepsen's Kafka workload.

It owns the verdict and nothing else: it never talks to a broker, so tests/chaos/test_checker.py
can feed it synthetic histories. A history is a dict (run.py writes it as history.json):
  acks:       [[partition, offset, value], ...]   every send the broker acknowledged
  reads:      {consumer: [[partition, offset, value], ...]}   in the order each consumer read
  watermarks: {observer: [[partition, high watermark], ...]}  in the order each client saw them
  final:      [[partition, offset, value], ...]   the read of every partition after the run
Values are strings, partitions and offsets ints; other keys (the fault log) are not checked.

Checks (each violation is one line naming what, where and the evidence):
  lost:         an acknowledged (p, offset, value) is not in the final read at that offset;
  conflict:     some (p, offset) held two different values across acks, all reads and the final
                read;
  vanished:     a value read during the run at (p, offset) is absent from the final read (the
                log lost or truncated data a consumer had already seen as committed);
  nonmonotonic: a consumer read an offset of a partition not above the one it read before
                (nothing here seeks, so offsets of one consumer only go up);
  hw_back:      a client saw a partition's high watermark lower than one it saw before.
Counted, not violations: duplicates (one value at several offsets: a retried send whose first
attempt was written, allowed with enable.idempotence=false) and unacked values found in the log
(sends that failed or timed out for the client but were written).
"""

import json
import sys

VIOLATION_KINDS = ("lost", "conflict", "vanished", "nonmonotonic", "hw_back")
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
        return ("acked=%d final=%d read=%d lost=%d duplicates=%d unacked_present=%d "
                "conflicts=%d vanished=%d nonmonotonic=%d hw_back=%d hw_seen=%d -> %s" % (
                    c["acked"], c["final"], c["read"], len(self.violations["lost"]),
                    c["duplicates"], c["unacked_present"], len(self.violations["conflict"]),
                    len(self.violations["vanished"]), len(self.violations["nonmonotonic"]),
                    len(self.violations["hw_back"]), c["hw_seen"],
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

    # Every observation of "offset o of partition p holds v", by source.
    seen = {}

    def observe(p, o, v, source):
        seen.setdefault((p, o), {}).setdefault(v, source)

    for p, o, v in acks:
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

    for (p, o), values in sorted(seen.items()):
        if len(values) > 1:
            r.violations["conflict"].append("p%d offset %d held %s" % (p, o, ", ".join(
                "%r (%s)" % (v, src) for v, src in sorted(values.items()))))

    for p, o, v in acks:
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
    for name, ms in sorted(marks.items()):
        top = {}
        for i, (p, hw) in enumerate(ms):
            hw_seen += 1
            if p in top and hw < top[p]:
                r.violations["hw_back"].append(
                    "%s saw p%d high watermark %d after %d (observation #%d)" % (name, p, hw,
                                                                                 top[p], i))
            top[p] = max(hw, top.get(p, hw))

    offsets_of = {}
    for p, o, v in final:
        offsets_of.setdefault(v, set()).add((p, o))
    acked_values = {v for _, _, v in acks}
    r.counts = {
        "acked": len(acks),
        "final": len(final),
        "read": sum(len(rs) for rs in reads.values()),
        "duplicates": sum(1 for locs in offsets_of.values() if len(locs) > 1),
        "unacked_present": sum(1 for v in offsets_of if v not in acked_values),
        "hw_seen": hw_seen,
    }
    return r


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
