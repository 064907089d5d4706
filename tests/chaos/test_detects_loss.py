"""The whole chaos pipeline reports real loss: with replication.factor 1, wiping a partition
leader's copy (fault "wipe") loses what it acknowledged, and run.py must fail naming lost
acknowledgements, two values at one offset and acknowledgements on no disk (whether a client
also saw the high watermark go back depends on timing, so that is not asserted). Catches a run
that passes whatever happens (a history not recorded, the final read or the replica read
reading the wrong thing, the verdict ignored in the exit status)."""

import os
import re
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def test_wiped_single_replica_is_reported_as_lost():
    run = subprocess.run(
        ["/usr/bin/python3", os.path.join(HERE, "run.py"), "--seed", "1", "--faults", "1",
         "--kinds", "wipe", "--rf", "1", "--min-insync", "1", "--client-abort-reruns", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=200)
    out = run.stdout.decode("utf-8", "replace")
    assert run.returncode == 1, out
    assert "wiped node" in out, out
    summary = [line for line in out.splitlines() if line.startswith("chaos: seed=1 ")]
    assert len(summary) == 1 and summary[0].endswith("-> FAILED"), out
    counts = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", summary[0]))
    assert counts["faults"] == 1 and counts["acked"] > 0, summary
    assert counts["lost"] > 0 and counts["conflicts"] > 0 and counts["under_replicated"] > 0, \
        summary
    assert "\n  lost: p" in out and "\n  conflict: p" in out, out
    path = re.search(r"run directory \(node logs, history.json\): (\S+)", out).group(1)
    assert os.path.exists(os.path.join(path, "history.json")), out
    shutil.rmtree(path)
