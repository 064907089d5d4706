"""How a node learns who it is and who its peers are (issue 9, "How a user starts a cluster").

Every bad configuration fails at start with its exit status and one line naming the key, before
the data directory is touched; a port already in use names the port and the setting that chose
it; the data directory records the cluster id and node id in Kafka's meta.properties, written
at first start, kept across restarts, recreated for a directory from before it existed (with the
cluster id the metadata already held), and a start with another node id is refused. Finally
`scripts/cluster start 3` / `stop` bring three real processes up on their ports and down again.
"""

import os
import random
import signal
import socket
import time
import subprocess

import pytest
from confluent_kafka.admin import AdminClient

from conftest import CHRONIK_BIN, REPO_DIR, Broker, free_ports

TIMEOUT_S = 30
EXIT_CONFIG, EXIT_START = 1, 2
CLUSTER_SCRIPT = os.path.join(REPO_DIR, "scripts", "cluster")


def run(args, data_dir):
    """Runs chronik to completion (every case here must refuse to start)."""
    proc = subprocess.run([CHRONIK_BIN, "--data-dir", str(data_dir)] + args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def refused(args, data_dir, status, *needles):
    """Asserts a start refused with status and exactly one stderr line holding every needle,
    nothing on stdout, and (for configuration errors) no data directory created."""
    code, out, err = run(args, data_dir)
    assert code == status, "exit status %d, expected %d; stderr: %s" % (code, status, err)
    assert out == "", "printed a start-up line without serving: %s" % out
    lines = err.splitlines()
    assert len(lines) == 1, "expected one line, got: %r" % err
    assert lines[0].startswith("chronik: "), lines[0]
    for needle in needles:
        assert needle in lines[0], "%r not in %r" % (needle, lines[0])
    return lines[0]


def ports_args(port, http_port, cluster_port):
    return ["--port", str(port), "--set", "http.port=%d" % http_port,
            "--set", "cluster.port=%d" % cluster_port]


VOTERS = "controller.quorum.voters="


@pytest.mark.parametrize("voters,needles", [
    ("1@127.0.0.1:11092,,2@127.0.0.1:11093", ["entry 2 is empty"]),
    (",", ["entry 1 is empty"]),
    ("127.0.0.1:11092", ["entry 1 '127.0.0.1:11092' is not ID@HOST:PORT"]),
    ("1@127.0.0.1", ["entry 1 (node 1): expected HOST:PORT"]),
    ("1@127.0.0.1:70000", ["the port must be a number from 1 to 65535"]),
    ("1@127.0.0.1:11092,2@0.0.0.0:11093", ["not a wildcard address"]),
    ("1@127.0.0.1:11092,1@127.0.0.1:11093", ["node id 1 appears twice"]),
    ("1@127.0.0.1:11092,2@127.0.0.1:11092", ["nodes 1 and 2 have the same address 127.0.0.1:11092"]),
    ("-1@127.0.0.1:11092", ["the node id '-1' is not an integer from 0 to 2147483647"]),
    ("2147483648@127.0.0.1:11092", ["the node id '2147483648' is not an integer"]),
    (",".join("%d@127.0.0.1:%d" % (i, 11000 + i) for i in range(1, 9)), ["more than 7 voters"]),
])
def test_bad_voter_list_fails_with_one_line(tmp_path, voters, needles):
    data = tmp_path / "data"
    refused(["--node-id", "1", "--set", VOTERS + voters], data, EXIT_CONFIG,
            "invalid value", "for controller.quorum.voters (from --set)", *needles)
    assert not data.exists(), "a refused configuration created the data directory"


def test_voter_entry_for_this_node_must_be_its_cluster_address(tmp_path):
    data = tmp_path / "data"
    # Node 2 on Kafka port 9093: its cluster port is 11093 (derived) at 127.0.0.1.
    refused(["--node-id", "2", "--port", "9093", "--set",
             VOTERS + "1@127.0.0.1:11092,2@127.0.0.1:11094,3@127.0.0.1:11093"],
            data, EXIT_CONFIG, "names this node (node.id 2) at 127.0.0.1:11094",
            "its cluster port is 11093 (from the Kafka port + 2000, as cluster.port is not set)",
            "make the entry's port 11093 or set cluster.port=11094")
    refused(["--node-id", "2", "--port", "9093", "--set",
             VOTERS + "1@127.0.0.1:11092,2@127.0.0.2:11093"],
            data, EXIT_CONFIG, "names this node (node.id 2) at 127.0.0.2:11093",
            "its cluster address is 127.0.0.1:11093", "make the entry say 127.0.0.1:11093")
    refused(["--node-id", "2", "--port", "9093", "--set", "cluster.port=12000", "--set",
             VOTERS + "1@127.0.0.1:11092,2@127.0.0.1:11093"],
            data, EXIT_CONFIG, "its cluster port is 12000 (from cluster.port)")
    assert not data.exists()


def test_ports_of_one_node_must_differ(tmp_path):
    data = tmp_path / "data"
    refused(["--port", "9092", "--set", "http.port=9092"], data, EXIT_CONFIG,
            "the Kafka port 9092 (from --port), http.port 9092 and cluster.port 11092 must all "
            "differ")
    refused(["--set", "listeners=PLAINTEXT://127.0.0.1:9092", "--set", "cluster.port=10092"],
            data, EXIT_CONFIG, "(from listeners), http.port 10092 and cluster.port 10092")
    assert not data.exists()


class Held:
    """A port held by a listening socket, as another process would hold it."""

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_port_in_use_names_the_port_and_the_setting(tmp_path):
    data = tmp_path / "data"
    with Held() as held:
        port, http_port = free_ports(2)
        refused(ports_args(port, http_port, held.port), data, EXIT_START,
                "cannot listen on 127.0.0.1:%d for the cluster port (from cluster.port)" %
                held.port, "in use")
        assert not data.exists(), "a taken port still created the data directory"
        refused(["--port", str(held.port - 2000), "--set", "http.port=%d" % http_port], data,
                EXIT_START, "cannot listen on 127.0.0.1:%d for the cluster port (from the Kafka "
                "port + 2000, as cluster.port is not set)" % held.port)
        http_port, cluster_port = free_ports(2)
        refused(ports_args(held.port, http_port, cluster_port), data, EXIT_START,
                "cannot listen on 127.0.0.1:%d for the Kafka protocol (from --port)" % held.port)
        refused(["--set", "listeners=PLAINTEXT://127.0.0.1:%d" % held.port, "--set",
                 "http.port=%d" % http_port, "--set", "cluster.port=%d" % cluster_port],
                data, EXIT_START, "for the Kafka protocol (from listeners)")
        assert not data.exists()


def test_two_nodes_on_conflicting_ports_cannot_both_start(make_broker, tmp_path):
    # The seed system started nodes on conflicting ports; here the second node is refused
    # whichever of the first node's ports it asks for.
    first = make_broker(["--node-id", "1"]).start()
    http_port, cluster_port = free_ports(2)
    refused(ports_args(first.cluster_port, http_port, cluster_port), tmp_path / "second",
            EXIT_START, "127.0.0.1:%d for the Kafka protocol (from --port)" % first.cluster_port,
            "in use")
    port, http_port = free_ports(2)
    refused(ports_args(port, http_port, first.port), tmp_path / "second", EXIT_START,
            "127.0.0.1:%d for the cluster port (from cluster.port)" % first.port, "in use")
    assert first.alive()


def read_properties(path):
    props = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                props[key] = value
    return props


def cluster_id_served(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    return admin.list_topics(timeout=TIMEOUT_S).cluster_id


def test_meta_properties_records_the_node_and_cluster(make_broker):
    node = make_broker(["--node-id", "7"]).start()
    path = os.path.join(node.data_dir, "meta.properties")
    props = read_properties(path)
    assert props.keys() == {"version", "cluster.id", "node.id"}, props
    assert props["version"] == "1" and props["node.id"] == "7"
    assert len(props["cluster.id"]) == 22
    assert cluster_id_served(node) == props["cluster.id"]
    with open(path, "rb") as f:
        first = f.read()
    node.stop()
    node.start()
    with open(path, "rb") as f:
        assert f.read() == first, "a restart rewrote meta.properties"
    assert cluster_id_served(node) == props["cluster.id"]
    assert not os.path.exists(path + ".tmp")


def test_another_node_id_is_refused(make_broker):
    node = make_broker(["--node-id", "1"]).start()
    node.stop()
    line = refused(["--node-id", "2"] + ports_args(node.port, node.http_port, node.cluster_port),
                   node.data_dir, EXIT_START,
                   "data directory %s belongs to node 1 (node.id=1 in its meta.properties)" %
                   node.data_dir, "started with node.id 2",
                   "start it with --node-id 1, or give node 2 a data directory of its own")
    assert "node.id=1" in open(os.path.join(node.data_dir, "meta.properties")).read(), line
    node.start()  # the right id still starts


def test_data_dir_without_meta_properties_is_upgraded(make_broker):
    # A data directory from a version without meta.properties: the first start writes it with
    # the cluster id its metadata already holds, so clients see the same cluster.
    node = make_broker(["--node-id", "3"]).start()
    served = cluster_id_served(node)
    node.stop()
    path = os.path.join(node.data_dir, "meta.properties")
    os.remove(path)
    node.start()
    props = read_properties(path)
    assert props == {"version": "1", "cluster.id": served, "node.id": "3"}
    assert "wrote %s (cluster.id %s, node.id 3)" % (path, served) in node.stderr_text()
    assert cluster_id_served(node) == served


def test_meta_properties_of_another_cluster_is_refused(make_broker):
    node = make_broker(["--node-id", "1"]).start()
    served = cluster_id_served(node)
    node.stop()
    path = os.path.join(node.data_dir, "meta.properties")
    other = ("A" if served[0] != "A" else "B") + served[1:]
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace(served, other))
    refused(["--node-id", "1"] + ports_args(node.port, node.http_port, node.cluster_port),
            node.data_dir, EXIT_START, "says cluster.id %s but the metadata" % other,
            "belongs to cluster %s" % served)
    with open(path, "w") as f:
        f.write("version=0\nbroker.id=1\n")
    refused(["--node-id", "1"] + ports_args(node.port, node.http_port, node.cluster_port),
            node.data_dir, EXIT_START, "meta.properties: version 0 is not 1")


def test_voter_and_observer_without_a_quorum_wait_and_stop_cleanly(make_broker):
    # Catches: a node that serves clients before it has a controller and the metadata (it would
    # answer with an empty or stale cluster), or that cannot be stopped while it waits.
    # A voter of a two-voter group whose other voter never comes, and an observer whose only
    # voter does not exist: both run, hold their ports, do not serve, and stop on SIGTERM.
    voter = Broker(make_broker().data_dir)
    voter.port, voter.http_port, voter.cluster_port = free_ports(3)
    voter.extra_args = ["--node-id", "1", "--set",
                        VOTERS + "1@127.0.0.1:%d,2@127.0.0.1:1" % voter.cluster_port]
    observer = Broker(make_broker().data_dir)
    observer.port, observer.http_port, observer.cluster_port = free_ports(3)
    observer.extra_args = ["--node-id", "9", "--set", VOTERS + "1@127.0.0.1:1"]
    for node in (voter, observer):
        node.launch()
        # Its cluster port is bound (the transport listens) before anything else happens.
        deadline = time.monotonic() + TIMEOUT_S
        while not port_taken(node.cluster_port):
            assert node.alive() and time.monotonic() < deadline, node.stderr_text()
            time.sleep(0.02)
        time.sleep(0.5)  # a few election timeouts: still no quorum, so still not serving
        assert node.alive(), node.stderr_text()
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", node.port)) != 0, "serves without a quorum"
        node.stop()


def free_base_port(count):
    """A base b such that b+1..b+count and the same +1000 and +2000 are free right now."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 40000)
        socks = []
        try:
            for i in range(1, count + 1):
                for offset in (0, 1000, 2000):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    socks.append(s)
                    s.bind(("127.0.0.1", base + i + offset))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port range")


def script(args, data_root, base):
    env = dict(os.environ, DATA_ROOT=str(data_root), BASE_PORT=str(base), CHRONIK=CHRONIK_BIN)
    return subprocess.run([CLUSTER_SCRIPT] + args, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120, stdin=subprocess.DEVNULL)


def port_taken(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def kill_leftovers(root):
    """After a failed check: no node the script started may outlive the test."""
    for pidfile in root.glob("node*.pid"):
        pid = int(pidfile.read_text())
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if b"--node-id" in f.read():
                    os.kill(pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass


def test_scripts_cluster_starts_and_stops_three_nodes(tmp_path):
    root = tmp_path / "cluster"
    base = free_base_port(3)
    pids = []
    try:
        proc = script(["start", "3"], root, base)
        assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
        for i in (1, 2, 3):
            pid = int((root / ("node%d.pid" % i)).read_text())
            pids.append(pid)
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read().split(b"\0")
            voters = ",".join("%d@127.0.0.1:%d" % (j, base + j + 2000) for j in (1, 2, 3))
            assert cmdline[1:9] == [b"--node-id", b"%d" % i, b"--port", b"%d" % (base + i),
                                    b"--data-dir", b"%s/node%d" % (str(root).encode(), i),
                                    b"--set", ("controller.quorum.voters=" + voters).encode()]
            # Serving Kafka on its port, holding its cluster port, its identity on disk.
            with socket.create_connection(("127.0.0.1", base + i), timeout=TIMEOUT_S):
                pass
            assert port_taken(base + i + 2000)
            props = read_properties(root / ("node%d" % i) / "meta.properties")
            assert props["node.id"] == str(i)
            assert "chronik node %d: kafka PLAINTEXT://127.0.0.1:%d" % (i, base + i) in (
                root / ("node%d.log" % i)).read_text()
        # A second start while it runs is refused and leaves the nodes alone.
        again = script(["start", "3"], root, base)
        assert again.returncode == 1 and b"a cluster is running" in again.stderr
        proc = script(["stop"], root, base)
        assert proc.returncode == 0, proc.stderr.decode()
        for i, pid in enumerate(pids, 1):
            assert not os.path.exists("/proc/%d" % pid) or b"chronik" not in open(
                "/proc/%d/cmdline" % pid, "rb").read(), "node %d still runs" % i
            assert not (root / ("node%d.pid" % i)).exists()
            assert not port_taken(base + i)
    finally:
        kill_leftovers(root)


def start_while_held(root, base, n, port, listen):
    """`scripts/cluster start n` while this process holds port: bound, and served if listen."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))
        if listen:
            s.listen()
        try:
            return script(["start", str(n)], root, base)
        finally:
            kill_leftovers(root)


def test_scripts_cluster_reports_a_node_that_cannot_start(tmp_path):
    root = tmp_path / "cluster"
    base = free_base_port(2)
    # Node 2's cluster port, bound, not listening.
    proc = start_while_held(root, base, 2, base + 2 + 2000, listen=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "node 2 failed to start" in err and "for the cluster port" in err, err
    # Node 1 was stopped again: nothing is left running.
    assert not list(root.glob("node*.pid"))
    assert not port_taken(base + 1)


def test_scripts_cluster_starts_no_node_while_another_broker_holds_a_port(tmp_path):
    """A broker already serving on node 1's ports (scripts/start's uses 9092 and 11092, node
    1's with the default BASE_PORT) stops the start before any node runs. Catches the start
    going ahead: node 1 then fails, and nodes 2 and 3 dial that broker at node 1's cluster port
    (which once handed them its cluster id; test_cluster.py covers the broker's side)."""
    root = tmp_path / "cluster"
    base = free_base_port(3)
    proc = start_while_held(root, base, 3, base + 1 + 2000, listen=True)  # node 1's, served
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert err == ("cluster: port %d of node 1 is in use by another process (a broker started "
                   "with scripts/start? stop it first), or set BASE_PORT\n" % (base + 2001)), err
    assert not list(root.glob("node*")), list(root.glob("node*"))


def test_broker_rack_is_in_metadata(make_broker):
    # broker.rack reaches clients in Metadata (kafka-python's describe_cluster reads it);
    # without it the rack is null.
    from kafka.admin import KafkaAdminClient
    racked = make_broker(["--set", "broker.rack=eu-west-1a"]).start()
    plain = make_broker().start()
    for node, rack in ((racked, "eu-west-1a"), (plain, None)):
        admin = KafkaAdminClient(bootstrap_servers=node.bootstrap)
        try:
            brokers = admin.describe_cluster()["brokers"]
        finally:
            admin.close()
        assert [b["rack"] for b in brokers] == [rack], brokers
