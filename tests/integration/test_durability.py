"""Acknowledged means durable: SIGKILL the broker at random moments under an acks=all producer.

A confluent-kafka producer sends numbered messages in steady bursts, one request in flight (so
retries cannot reorder), while a consumer reads alongside and the broker is SIGKILLed at random
moments and restarted on the same data directory and ports. At the end the whole partition is
read back and checked:
  - every message whose delivery was acknowledged is at the offset its acknowledgement gave;
  - acknowledged messages sit in the log in the order they were sent;
  - every offset the live consumer saw during the run still holds the same message (no offset
    ever holds two different messages, across all crashes and recoveries).
Unacknowledged messages may or may not be in the log. CHRONIK_IT_KILLS sets the number of kills
(default 20, about 25 s); CHRONIK_IT_SEED replays a run's kill timing. A second test restarts
the broker cleanly (SIGTERM) and checks that topics, partitions and records are all there.
"""

import os
import threading
import time

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic

import helpers

KILLS = int(os.environ.get("CHRONIK_IT_KILLS", "20"))
TIMEOUT_S = 60
BURST = 20


class Sender(threading.Thread):
    """Produces "msg-N" values until stopped; records which N were acknowledged at which offset."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.producer = ck.Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "max.in.flight.requests.per.connection": 1,
            "linger.ms": 2,
            "retries": 1000000,
            "retry.backoff.ms": 50,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "message.timeout.ms": TIMEOUT_S * 1000,
            "queue.buffering.max.messages": 2000,
        })
        self.topic = topic
        self.stopping = threading.Event()
        self.acked = {}  # N -> offset
        self.failed = 0
        self.sent = 0

    def on_delivery(self, err, msg):
        if err is None:
            self.acked[int(msg.value().split(b"-")[1])] = msg.offset()
        else:
            self.failed += 1

    def run(self):
        # Bursts of BURST messages every 10 ms: a few thousand a second keeps many produce
        # requests in flight at every kill while keeping the final read-back short.
        while not self.stopping.is_set():
            for _ in range(BURST):
                try:
                    self.producer.produce(self.topic, value=b"msg-%d" % self.sent, partition=0,
                                          on_delivery=self.on_delivery)
                    self.sent += 1
                except BufferError:
                    break
            self.producer.poll(0.01)
        self.producer.flush(TIMEOUT_S)


class Watcher(threading.Thread):
    """Reads the partition alongside the producer and remembers what each offset held."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.consumer = ck.Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": "chronik-it-durability",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
        })
        self.consumer.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
        self.stopping = threading.Event()
        self.seen = {}
        self.conflicts = []

    def run(self):
        while not self.stopping.is_set():
            msg = self.consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            old = self.seen.setdefault(msg.offset(), msg.value())
            if old != msg.value():
                self.conflicts.append((msg.offset(), old, msg.value()))
        self.consumer.close()


def read_all(bootstrap, topic, partition=0):
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "chronik-it-durability-final",
                     "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        tp = ck.TopicPartition(topic, partition, ck.OFFSET_BEGINNING)
        c.assign([tp])
        log = {}
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            msg = c.poll(0.1)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == ck.KafkaError._PARTITION_EOF:
                    return log
                continue
            assert msg.offset() not in log, "offset %d delivered twice" % msg.offset()
            log[msg.offset()] = msg.value()
        raise AssertionError("reading the log back did not reach its end in %d s" % TIMEOUT_S)
    finally:
        c.close()


def test_acked_messages_survive_sigkill(make_broker, topic):
    r = helpers.rng("durability")
    broker = make_broker().start()
    # Create the topic through the producer's Metadata request before the clock starts.
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    p.produce(topic, value=b"msg--1", partition=0)
    assert p.flush(TIMEOUT_S) == 0
    del p

    sender = Sender(broker.bootstrap, topic)
    watcher = Watcher(broker.bootstrap, topic)
    sender.start()
    watcher.start()
    acked_per_life = []
    try:
        for _ in range(KILLS):
            before = len(sender.acked)
            time.sleep(r.uniform(0.2, 1.6))
            broker.kill()
            acked_per_life.append(len(sender.acked) - before)
            time.sleep(r.uniform(0.0, 0.3))
            broker.start()
        # Let the producer get through the last life before stopping it.
        before = len(sender.acked)
        helpers.wait_until(lambda: len(sender.acked) > before + 100, TIMEOUT_S,
                           "acknowledgements after the last restart")
    finally:
        sender.stopping.set()
        sender.join(TIMEOUT_S + 10)
        watcher.stopping.set()
        watcher.join(TIMEOUT_S)

    print("durability: %d kills, %d sent, %d acked, %d failed, acked per life %s" % (
        KILLS, sender.sent, len(sender.acked), sender.failed, acked_per_life))
    assert not sender.is_alive() and not watcher.is_alive()
    # The broker made progress in most lives, so the kills landed under load.
    assert sum(1 for n in acked_per_life if n > 0) >= KILLS // 2, acked_per_life

    log = read_all(broker.bootstrap, topic)
    assert not watcher.conflicts, "offsets that changed content: %r" % watcher.conflicts[:5]
    for offset, value in watcher.seen.items():
        assert log.get(offset) == value, "offset %d held %r, now %r" % (
            offset, value, log.get(offset))
    last_offset = -1
    for n in sorted(sender.acked):
        offset = sender.acked[n]
        assert log.get(offset) == b"msg-%d" % n, "acked msg-%d at offset %d, log has %r" % (
            n, offset, log.get(offset))
        assert offset > last_offset, "acked msg-%d at %d, not after %d" % (n, offset, last_offset)
        last_offset = offset


def test_clean_restart_keeps_topics_and_records(make_broker, topic):
    broker = make_broker().start()
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=TIMEOUT_S)
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for part in range(3):
        for i in range(50):
            p.produce(topic, value=b"p%d-%d" % (part, i), partition=part)
    assert p.flush(TIMEOUT_S) == 0
    del p, a

    broker.stop()  # SIGTERM, asserts exit status 0
    broker.start()
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=TIMEOUT_S)
    assert sorted(md.topics[topic].partitions) == [0, 1, 2]
    for part in range(3):
        log = read_all(broker.bootstrap, topic, part)
        assert [log[o] for o in sorted(log)] == [b"p%d-%d" % (part, i) for i in range(50)]

    # New records continue after the recovered ones.
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    offsets = []
    p.produce(topic, value=b"after", partition=2,
              on_delivery=lambda err, msg: offsets.append((err, msg.offset())))
    assert p.flush(TIMEOUT_S) == 0
    assert offsets[0][0] is None and offsets[0][1] > max(log)


def test_clean_shutdown_closes_every_partition_cleanly(make_broker, topic):
    """A clean shutdown closes its partitions on several threads at once (one after another,
    10,000 took 35 s). Every partition must still be closed whole: its clean-shutdown marker
    written (without it the next start scans the log as after a crash) and its records read
    back. Catches a closer that skips, double-closes or races on partitions, e.g. one that
    hands the threads a partition list built before every topic was counted."""
    broker = make_broker().start()
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    names = ["%s-%d" % (topic, t) for t in range(4)]
    for f in a.create_topics([NewTopic(n, 50, 1) for n in names]).values():
        f.result(timeout=TIMEOUT_S)
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for n in names:
        for part in range(50):
            p.produce(n, value=b"%s/%d" % (n.encode(), part), partition=part)
    assert p.flush(TIMEOUT_S) == 0
    del p, a

    broker.stop()  # SIGTERM, asserts exit status 0
    dirs = ["%s-%d" % (n, part) for n in names for part in range(50)]
    unclean = [d for d in dirs
               if not os.path.exists(os.path.join(broker.data_dir, d, ".clean_shutdown"))]
    assert unclean == [], "closed without their clean marker: %s" % unclean[:5]

    broker.start()
    for n in names[:1] + names[-1:]:
        for part in (0, 49):
            log = read_all(broker.bootstrap, n, part)
            assert list(log.values()) == [b"%s/%d" % (n.encode(), part)]
