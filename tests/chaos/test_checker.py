"""The chaos checker is honest: each kind of violation in a synthetic history is reported (and a
clean history, with the duplicates retries cause, passes). Catches a checker that a bug in its
own bookkeeping turned blind, which would make every chaos run pass."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checker import VIOLATION_KINDS, check  # noqa: E402


FINAL = [[0, 0, "a"], [0, 1, "b"], [0, 2, "b"], [0, 3, "x"], [1, 0, "c"], [1, 1, "d"]]


def clean():
    """Two partitions of three replicas, two consumers, one watermark observer; a retried send
    ("b") written at two offsets, one unacknowledged send ("x") present in the log; node 3's
    copy of p0 lags (offsets 0 and 1 only) and node 2 holds an uncommitted record past p1's
    end."""
    return {
        "acks": [[0, 0, "a"], [0, 2, "b"], [1, 0, "c"], [1, 1, "d"]],
        "reads": {
            "c1": [[0, 0, "a"], [1, 0, "c"], [0, 1, "b"], [0, 2, "b"], [1, 1, "d"]],
            "c2": [[1, 0, "c"], [1, 1, "d"], [0, 0, "a"]],
        },
        "watermarks": {"c1": [[0, 1], [1, 1], [0, 3], [1, 2]], "listoffsets": [[0, 3], [0, 3]]},
        "final": [list(x) for x in FINAL],
        "final_end": {0: 4, 1: 2},
        "assignment": {0: [1, 2, 3], 1: [2, 3, 1]},
        "replicas": {
            1: [list(x) for x in FINAL],
            2: [list(x) for x in FINAL] + [[1, 2, "t"]],
            3: [[0, 0, "a"], [0, 1, "b"], [1, 0, "c"], [1, 1, "d"]],
        },
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
    assert r.counts == {"acked": 4, "final": 6, "read": 8, "duplicates": 1, "renumbered": 0,
                        "unacked_present": 1, "hw_seen": 6, "hw_stale": 0, "replica_copies": 6,
                        "lagging": 1,
                        "replica_tail": 1}
    assert r.summary().endswith("-> OK")
    assert "lost=0 duplicates=1" in r.summary()


def test_lost_ack_is_reported():
    h = clean()
    h["acks"].append([1, 3, "e"])  # acknowledged, in no log
    r = check(h)
    assert r.violations["lost"] == ["p1 offset 3 acknowledged 'e', final read has nothing there"]
    assert r.violations["under_replicated"] == [
        "p1 offset 3 = 'e' acknowledged, on the disks of nodes [] of replicas [2, 3, 1]"]
    assert not r.ok


def test_ack_overwritten_is_lost_and_a_conflict():
    h = clean()
    h["final"][4] = [1, 0, "z"]  # the acknowledged "c" replaced by another value
    h["reads"] = {}  # so no read reports "c" as vanished either
    for node in (1, 2, 3):  # and every replica agrees with the leader's final read
        h["replicas"][node] = [[p, o, "z" if (p, o) == (1, 0) else v]
                               for p, o, v in h["replicas"][node]]
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


def test_one_late_low_high_watermark_corrected_at_once_is_counted_not_reported():
    # An answer the old leader computed before it stopped, read after the new leader's.
    h = clean()
    h["watermarks"]["c1"] += [[1, 1], [1, 2]]  # p1 seen at 2, then 1, then 2 again
    r = check(h)
    assert r.ok, r.first_violations()
    assert r.counts["hw_stale"] == 1


def test_replica_with_a_value_the_leader_lacks_is_reported():
    h = clean()
    h["replicas"][3] += [[0, 2, "b"], [0, 3, "q"]]  # "q" where the final read has "x"
    r = check(h)
    assert r.violations["conflict"] == ["p0 offset 3 held 'q' (disk of node 3), 'x' (final read)"]
    assert not r.violations["diverged"] and not r.violations["under_replicated"]


def test_replica_with_an_offset_the_final_read_lacks_is_reported():
    h = clean()
    h["final"] = [x for x in h["final"] if x != [0, 3, "x"]]
    h["final_end"][0] = 4  # offset 3 skipped by the read (say a control batch), held by 1
    h["replicas"][2] = [x for x in h["replicas"][2] if x != [0, 3, "x"]]
    assert only(check(h), "diverged") == [
        "node 1's p0 has offset 3 = 'x', which the final read lacks"]


def test_replica_with_a_gap_is_reported():
    h = clean()
    h["replicas"][2] = [x for x in h["replicas"][2] if x != [0, 1, "b"]]
    assert only(check(h), "diverged") == [
        "node 2's p0 lacks offset 1 = 'b' below its offset 3"]


def test_replica_without_a_copy_is_reported():
    h = clean()
    h["replicas"][3] = [x for x in h["replicas"][3] if x[0] != 1]
    assert only(check(h), "diverged") == ["node 3 holds no copy of p1"]


def test_ack_on_a_minority_of_disks_is_reported():
    h = clean()
    h["replicas"][2] = [x for x in h["replicas"][2] if x[0] != 0]  # node 2's p0 lost entirely
    r = check(h)
    assert r.violations["diverged"] == ["node 2 holds no copy of p0"]
    assert r.violations["under_replicated"] == [
        "p0 offset 2 = 'b' acknowledged, on the disks of nodes [1] of replicas [1, 2, 3]"]
    assert not r.violations["lost"]  # the leader still serves it: only the disks tell


def test_json_keys_and_lists_as_run_py_writes_them():
    import json
    r = check(json.loads(json.dumps(clean())))
    assert r.ok, r.first_violations()
    assert r.counts["replica_copies"] == 6


def idempotent(values_p0):
    """A clean history of one partition whose final read is values_p0 (every value acked where
    it is), written by idempotent producers."""
    final = [[0, o, v] for o, v in enumerate(values_p0)]
    return {"idempotence": True, "acks": [list(x) for x in final], "reads": {},
            "watermarks": {}, "final": final, "final_end": {0: len(final)}}


def test_idempotent_history_in_send_order_passes():
    r = check(idempotent(["s1-w0-0", "s1-w1-0", "s1-w0-1", "s1-w1-1", "s1-w0-2"]))
    assert r.ok, r.first_violations()


def test_duplicate_of_an_idempotent_producer_is_reported():
    h = idempotent(["s1-w0-0", "s1-w0-1", "s1-w0-1", "s1-w0-2"])
    h["acks"] = [a for a in h["acks"] if a[1] != 1]  # the first write's answer was lost
    found = only(check(h), "duplicated")
    assert "'s1-w0-1' written at p0 offset 1, p0 offset 2" in found[0]
    h["idempotence"] = False  # the same log is allowed without idempotence
    assert check(h).ok


def test_reordered_writes_of_an_idempotent_producer_are_reported():
    found = only(check(idempotent(["s1-w0-0", "s1-w0-2", "s1-w1-0", "s1-w0-1"])), "reordered")
    assert found == ["p0 offset 3 holds 's1-w0-1' after offset 1 held s1-w0-2"]


def renumbering(producers, ended):
    """The history of librdkafka's epoch bump (issue 4953) as a chaos run saw it: producer 7
    wrote s1-w0-1 and -2 under epoch 0, ended that epoch itself, and wrote both again under
    epoch 1 before -3; producers gives each offset's (producer id, epoch) as on the disks."""
    h = idempotent(["s1-w0-1", "s1-w0-2", "s1-w0-1", "s1-w0-2", "s1-w0-3"])
    h["assignment"] = {0: [1]}
    h["replicas"] = {1: [x + list(w) for x, w in zip(h["final"], producers)]}
    h["client_renumbered"] = ended
    return h


BUMPED = [(7, 0), (7, 0), (7, 1), (7, 1), (7, 1)]


def test_values_the_client_renumbered_are_counted_not_reported():
    r = check(renumbering(BUMPED, [[7, 0]]))
    assert r.ok, r.first_violations()
    assert r.counts["renumbered"] == 2 and r.counts["duplicates"] == 2
    assert "renumbered=2 " in r.summary()


def test_a_new_epoch_the_client_did_not_end_itself_is_reported():
    """Without the client's own word for ending epoch 0 (a broker answer that made it bump, or a
    new producer id), the copies are the broker's: duplicated and out of order."""
    for ended in ([], [[7, 1]], [[8, 0]]):
        r = check(renumbering(BUMPED, ended))
        assert len(r.violations["duplicated"]) == 2, (ended, r.first_violations())
        assert "(producer 7 epoch 0)" in r.violations["duplicated"][0]
        assert r.violations["reordered"], ended
        assert r.counts["renumbered"] == 0


def test_a_duplicate_within_one_epoch_is_reported():
    for producers in ([(7, 0)] * 5, [(7, 0), (7, 0), (8, 1), (8, 1), (8, 1)],
                      [(7, 1), (7, 1), (7, 0), (7, 0), (7, 0)]):
        r = check(renumbering(producers, [[7, 0], [7, 1], [8, 0]]))
        assert len(r.violations["duplicated"]) == 2, (producers, r.first_violations())
        assert r.counts["renumbered"] == 0


def test_every_kind_has_a_test():
    assert set(VIOLATION_KINDS) == {"lost", "conflict", "vanished", "nonmonotonic", "hw_back",
                                    "diverged", "under_replicated", "duplicated", "reordered"}


def test_ack_without_offset_is_found_by_value():
    """librdkafka acknowledges an idempotent batch whose answer was lost without an offset once a
    later batch succeeds; such an ack counts when its value is anywhere in its partition's final
    read, and is lost when it is not (a checker that compared None offsets crashed)."""
    h = clean()
    h["acks"].append([0, None, "x"])
    r = check(h)
    assert r.ok, r.first_violations()
    h["acks"].append([1, None, "y"])
    lost = only(check(h), "lost")
    assert lost == ["p1 acknowledged 'y' (offset unknown), not in the final read"]
