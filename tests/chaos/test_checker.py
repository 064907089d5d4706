"""The chaos checker is honest: each kind of violation in a synthetic history is reported (and a
clean history, with the duplicates retries cause, passes). Catches a checker that a bug in its
own bookkeeping turned blind, which would make every chaos run pass."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checker import VIOLATION_KINDS, check  # noqa: E402


def clean():
    """Two partitions, two consumers, one watermark observer; a retried send ("b") written at
    two offsets, one unacknowledged send ("x") present in the log."""
    return {
        "acks": [[0, 0, "a"], [0, 2, "b"], [1, 0, "c"], [1, 1, "d"]],
        "reads": {
            "c1": [[0, 0, "a"], [1, 0, "c"], [0, 1, "b"], [0, 2, "b"], [1, 1, "d"]],
            "c2": [[1, 0, "c"], [1, 1, "d"], [0, 0, "a"]],
        },
        "watermarks": {"c1": [[0, 1], [1, 1], [0, 3], [1, 2]], "listoffsets": [[0, 3], [0, 3]]},
        "final": [[0, 0, "a"], [0, 1, "b"], [0, 2, "b"], [0, 3, "x"], [1, 0, "c"], [1, 1, "d"]],
    }


def only(result, kind):
    """The violations of result, which must all be of kind (and at least one)."""
    others = {k: v for k, v in result.violations.items() if v and k != kind}
    assert not others, others
    assert result.violations[kind], result.summary()
    assert not result.ok
    return result.violations[kind]


def test_clean_history_passes_and_counts():
    r = check(clean())
    assert r.ok, r.first_violations()
    assert r.counts == {"acked": 4, "final": 6, "read": 8, "duplicates": 1,
                        "unacked_present": 1, "hw_seen": 6}
    assert r.summary().endswith("-> OK")
    assert "lost=0 duplicates=1" in r.summary()


def test_lost_ack_is_reported():
    h = clean()
    h["acks"].append([1, 2, "e"])  # acknowledged, never in the log
    assert only(check(h), "lost") == [
        "p1 offset 2 acknowledged 'e', final read has nothing there"]


def test_ack_overwritten_is_lost_and_a_conflict():
    h = clean()
    h["final"][4] = [1, 0, "z"]  # the acknowledged "c" replaced by another value
    h["reads"] = {}  # so no read reports "c" as vanished either
    r = check(h)
    assert r.violations["lost"] == ["p1 offset 0 acknowledged 'c', final read has 'z'"]
    assert r.violations["conflict"] == ["p1 offset 0 held 'c' (ack), 'z' (final read)"]
    assert not r.ok


def test_two_values_at_one_offset_across_reads_are_reported():
    h = clean()
    h["reads"]["c2"].append([0, 3, "y"])  # c2 read "y" where the log finally holds "x"
    assert only(check(h), "conflict") == [
        "p0 offset 3 held 'x' (final read), 'y' (read by c2)"]


def test_two_values_at_one_offset_between_consumers_are_reported():
    h = clean()
    h["reads"]["c1"].append([1, 5, "u"])
    h["reads"]["c2"].append([1, 5, "w"])
    h["final"].append([1, 5, "u"])
    assert only(check(h), "conflict") == [
        "p1 offset 5 held 'u' (read by c1), 'w' (read by c2)"]


def test_read_value_missing_from_the_final_log_is_reported():
    h = clean()
    h["reads"]["c1"].append([1, 7, "gone"])  # read during the run, truncated afterwards
    assert only(check(h), "vanished") == [
        "p1 offset 7 = 'gone' read by c1, absent from the final read"]


def test_consumer_going_back_is_reported():
    h = clean()
    h["reads"]["c2"].append([1, 1, "d"])  # c2 reads p1 offset 1 a second time
    assert only(check(h), "nonmonotonic") == [
        "c2 read p1 offset 1 after offset 1 (its read #3)"]


def test_consumer_offsets_are_checked_per_partition():
    h = clean()
    h["reads"]["c1"] = [[0, 2, "b"], [1, 0, "c"], [0, 1, "b"]]  # p0: 2 then 1
    assert only(check(h), "nonmonotonic") == [
        "c1 read p0 offset 1 after offset 2 (its read #2)"]


def test_high_watermark_going_back_is_reported():
    h = clean()
    h["watermarks"]["c1"] += [[1, 1]]  # p1 was seen at 2 before
    assert only(check(h), "hw_back") == [
        "c1 saw p1 high watermark 1 after 2 (observation #4)"]


def test_high_watermark_going_back_after_a_dip_is_measured_against_the_top():
    h = clean()
    h["watermarks"]["listoffsets"] += [[0, 1], [0, 2]]  # both below the 3 seen first
    assert len(only(check(h), "hw_back")) == 2


def test_json_keys_and_lists_as_run_py_writes_them():
    import json
    r = check(json.loads(json.dumps(clean())))
    assert r.ok, r.first_violations()


def test_every_kind_has_a_test():
    assert set(VIOLATION_KINDS) == {"lost", "conflict", "vanished", "nonmonotonic", "hw_back"}
