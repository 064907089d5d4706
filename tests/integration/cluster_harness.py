"""A local cluster of real chronik processes, started as docs/operations.md says a user starts
one: node i runs `chronik --node-id i --port P --data-dir D --set controller.quorum.voters=...`
(the HTTP and cluster ports given explicitly so tests can pick free ones). Nodes can be killed
with SIGKILL, stopped with SIGTERM and restarted on the same ports and data directory."""

import os
import socket
import time

from confluent_kafka.admin import AdminClient

from conftest import Broker, free_ports

TIMEOUT_S = 30


def serving(port):
    """True once something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Cluster:
    """n voters (nodes 1..n) and `observers` more nodes (n+1..) that are not in the voter list.

    node_args: {node id: [args]} added to that node's command line after extra_args.
    voter_port(node, peer): the port node's voter list gives for peer (another voter), instead
    of peer's cluster port; a node dials its peers there (tests/chaos puts a fault proxy on it).
    A node's own entry is always its cluster port, as the broker requires."""

    def __init__(self, root, n, extra_args=(), observers=0, node_args=None, voter_port=None):
        self.root = str(root)
        ports = free_ports(3 * (n + observers))
        self.nodes = {}

        def voters(node_id):
            return ",".join("%d@127.0.0.1:%d" % (
                i + 1, ports[3 * i + 2] if voter_port is None or i + 1 == node_id
                else voter_port(node_id, i + 1)) for i in range(n))

        for i in range(n + observers):
            node_id = i + 1
            b = Broker(os.path.join(self.root, "node%d" % node_id),
                       ["--node-id", str(node_id), "--set",
                        "controller.quorum.voters=" + voters(node_id)] + list(extra_args) +
                       list((node_args or {}).get(node_id, ())))
            b.port, b.http_port, b.cluster_port = ports[3 * i:3 * i + 3]
            b.served = True  # fixed ports: the voter list names them
            b.node_id = node_id
            self.nodes[node_id] = b

    def start(self):
        """Starts every node, then waits until each serves (prints its start-up line, which a
        node of a cluster does once a majority of the voters is up)."""
        for b in self.nodes.values():
            b.launch()
        for b in self.nodes.values():
            try:
                b.wait_started()
            except Exception as e:
                raise AssertionError("node %d did not start: %s\nevery node's log:\n%s" % (
                    b.node_id, e, "\n".join("node %d:\n%s" % (i, n.stderr_text())
                                            for i, n in self.nodes.items())))
        self.wait_serving()
        return self

    def wait_serving(self, ids=None, timeout_s=TIMEOUT_S):
        """Waits until every node (of ids) accepts Kafka connections: a node listens only once
        it has caught up with the metadata and is unfenced."""
        ids = list(self.nodes) if ids is None else ids
        deadline = time.monotonic() + timeout_s
        for i in ids:
            while not serving(self.nodes[i].port):
                assert self.nodes[i].alive(), "node %d died:\n%s" % (
                    i, self.nodes[i].stderr_text())
                assert time.monotonic() < deadline, "node %d does not serve:\n%s" % (
                    i, self.nodes[i].stderr_text())
                time.sleep(0.02)

    def bootstrap(self, node_id):
        return self.nodes[node_id].bootstrap

    def metadata(self, node_id, topic=None, timeout_s=TIMEOUT_S):
        """Metadata as node node_id answers it (the answering broker is checked)."""
        deadline = time.monotonic() + timeout_s
        while True:
            admin = AdminClient({"bootstrap.servers": self.bootstrap(node_id)})
            md = admin.list_topics(topic=topic, timeout=timeout_s)
            if md.orig_broker_id == node_id:
                return md
            assert time.monotonic() < deadline, "node %d never answered Metadata" % node_id
            time.sleep(0.05)

    def controller(self, node_id):
        return self.metadata(node_id).controller_id

    def stop(self):
        errors = []
        for b in self.nodes.values():
            if b.alive():
                try:
                    b.stop()
                except Exception as e:  # report every node's failure, stop the others first
                    errors.append(str(e))
        assert not errors, "\n".join(errors)
