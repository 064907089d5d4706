#!/usr/bin/env python3
"""Splits a producer's latency into its parts, from chronik-bench --client-stats FILE.

librdkafka's statistics cover one interval each (a second with --client-stats) and, per broker
connection, hold three latency windows in microseconds:
  int_latency     a message's time in the client's own partition queue before it goes into a
                  request (linger.ms and batching: the client's share)
  outbuf_latency  a request's time in the connection's output buffer before it is written
  rtt             a request's round trip: written to the socket until its response arrived
                  (the broker's share, with the network and both ends' scheduling)
Prints one row a second per producer connection, then for each part the median and the highest
of the per-second figures. A send-to-delivery latency is roughly the sum of the three, plus the
wait for the application to serve its delivery report.

Usage: client_stats.py FILE [--skip S]    (--skip: leave out the first S seconds, default 0)
"""
import argparse
import json
import statistics
import sys

PARTS = ("int_latency", "outbuf_latency", "rtt")


def windows(path, skip_s):
    """Yields (second, name, broker stats) of producer connections that sent requests."""
    first = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            if doc.get("type") != "producer":
                continue
            if first is None:
                first = doc["ts"]
            second = (doc["ts"] - first) / 1e6
            if second < skip_s:
                continue
            for b in doc.get("brokers", {}).values():
                if b.get("nodeid", -1) >= 0 and b["rtt"]["cnt"] > 0:
                    yield second, b["name"], b


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--skip", type=float, default=0.0)
    args = ap.parse_args()
    seen = {p: {"p50": [], "p99": [], "max": []} for p in PARTS}
    print("   s  connection                      requests | " +
          " | ".join("%s p50/p99/max ms" % p for p in PARTS))
    for second, name, b in windows(args.file, args.skip):
        cells = []
        for p in PARTS:
            w = b[p]
            for k in ("p50", "p99", "max"):
                seen[p][k].append(w[k] / 1000.0)
            cells.append("%6.2f %6.2f %6.2f" % (w["p50"] / 1000.0, w["p99"] / 1000.0,
                                                 w["max"] / 1000.0))
        print("%4.0f  %-30.30s %9d | %s" % (second, name, b["rtt"]["cnt"], " | ".join(cells)))
    if not seen["rtt"]["p99"]:
        print("client_stats.py: no producer connection sent a request in %s" % args.file,
              file=sys.stderr)
        return 1
    print("per second, median (highest):")
    for p in PARTS:
        s = seen[p]
        print("  %-15s p50 %.2f (%.2f)  p99 %.2f (%.2f)  max %.2f ms" % (
            p, statistics.median(s["p50"]), max(s["p50"]), statistics.median(s["p99"]),
            max(s["p99"]), max(s["max"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
