"""run.py's --client-abort-reruns runs a chaos run again only when librdkafka's own assertion
aborted it (confluentinc/librdkafka issue 3608), never after a verdict or another crash. Catches
a wrapper that hides a broker failure by running until it passes, one that never reruns, and
one that reports a failed last attempt as a pass."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import CLIENT_ABORT, rerun_client_aborts  # noqa: E402

# A stand-in for run.py: counts its runs in a file, then ends as its attempt number says.
CHILD = """
import os, sys
path = sys.argv[1]
with open(path, "a") as f:
    f.write("x")
attempt = len(open(path).read())
end = sys.argv[2 + min(attempt, len(sys.argv) - 2) - 1]
print("attempt", attempt, flush=True)
if end == "client_abort":
    sys.stderr.write("python3: rdkafka_broker.c:4616: %s `thrd_is_current' failed.\\n")
    sys.stderr.flush()
    os.abort()
if end == "other_abort":
    os.abort()
if end == "text_exit":
    print("%s (quoted in a log, not an abort)", flush=True)
    sys.exit(1)
sys.exit({"pass": 0, "fail": 1}[end])
""" % (CLIENT_ABORT, CLIENT_ABORT)


def run(tmp_path, ends, reruns):
    """rerun_client_aborts over the stand-in ending as ends says, attempt by attempt (the last
    one repeats): (exit status, attempts made)."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    count = tmp_path / "count"
    rc = rerun_client_aborts([sys.executable, str(script), str(count)] + ends, reruns)
    return rc, len(count.read_text())


def test_a_client_abort_is_run_again(tmp_path):
    assert run(tmp_path, ["client_abort", "pass"], 1) == (0, 2)


def test_the_verdict_of_the_rerun_counts(tmp_path):
    assert run(tmp_path, ["client_abort", "fail"], 1) == (1, 2)


def test_reruns_are_bounded(tmp_path):
    assert run(tmp_path, ["client_abort"], 2) == (1, 3)


def test_a_failed_verdict_is_final(tmp_path):
    assert run(tmp_path, ["fail", "pass"], 3) == (1, 1)


def test_another_crash_is_final(tmp_path):
    assert run(tmp_path, ["other_abort", "pass"], 3) == (1, 1)


def test_the_text_alone_is_not_an_abort(tmp_path):
    assert run(tmp_path, ["text_exit", "pass"], 3) == (1, 1)


def test_a_pass_is_a_pass(tmp_path):
    assert run(tmp_path, ["pass"], 0) == (0, 1)
