"""The fault proxy forwards, cuts, heals and delays exactly the ordered pairs it is told to.
Catches a cut that leaves open connections alive or lets new ones through, a one-way cut that
also stops the other direction, a heal that does not restore forwarding, and a delay that is not
applied (each would make a chaos run test less than it claims)."""

import os
import socket
import socketserver
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proxy import FaultProxy  # noqa: E402

TIMEOUT_S = 5


class Echo(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                while True:
                    data = self.request.recv(4096)
                    if not data:
                        return
                    self.request.sendall(data)
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]


@pytest.fixture
def net():
    """Nodes 1..3, each an echo server behind the proxy."""
    servers = {j: Echo() for j in (1, 2, 3)}
    proxy = FaultProxy([1, 2, 3])
    for j, s in servers.items():
        proxy.set_target(j, s.port)
    yield proxy
    proxy.close()
    for s in servers.values():
        s.shutdown()
        s.server_close()


def dial(proxy, i, j):
    return socket.create_connection(("127.0.0.1", proxy.listen_port(i, j)), timeout=TIMEOUT_S)


def echoes(sock, payload=b"ping"):
    """True when payload comes back; False when the connection is closed instead."""
    try:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(4096)
            if not chunk:
                return False
            got += chunk
        return got == payload
    except (ConnectionError, OSError):
        return False


def test_forwards_every_ordered_pair_to_its_target(net):
    ports = {net.listen_port(i, j) for i, j in net.pairs}
    assert len(net.pairs) == 6 and len(ports) == 6
    for i, j in net.pairs:
        with dial(net, i, j) as s:
            assert echoes(s, b"%d->%d" % (i, j))


def test_cut_closes_open_connections_and_refuses_new_ones_one_way(net):
    a = dial(net, 1, 2)
    b = dial(net, 2, 1)
    assert echoes(a) and echoes(b)
    net.cut([(1, 2)])
    assert not echoes(a)  # the open connection is gone
    with dial(net, 1, 2) as again:
        assert not echoes(again)  # accepted, then closed at once
    assert echoes(b)  # the other direction still flows
    assert net.state() == ({(1, 2)}, {})
    net.heal()
    with dial(net, 1, 2) as healed:
        assert echoes(healed)
    a.close()
    b.close()


def test_isolate_cuts_every_pair_of_the_node_and_nothing_else(net):
    net.isolate(3)
    cut, _ = net.state()
    assert cut == {(1, 3), (3, 1), (2, 3), (3, 2)}
    for i, j in net.pairs:
        with dial(net, i, j) as s:
            assert echoes(s) == (3 not in (i, j)), (i, j)
    net.heal([(1, 3)])
    with dial(net, 1, 3) as s:
        assert echoes(s)
    with dial(net, 3, 1) as s:
        assert not echoes(s)


def test_delay_holds_each_chunk_and_heal_drops_it(net):
    with dial(net, 2, 3) as s:
        assert echoes(s)
        net.delay([(2, 3)], 200)
        assert net.state() == (set(), {(2, 3): 200})
        t = time.monotonic()
        assert echoes(s)
        # Both directions of the pair's connection are held: at least two delays round trip.
        assert time.monotonic() - t >= 0.4
        net.heal()
        t = time.monotonic()
        assert echoes(s)
        assert time.monotonic() - t < 0.2


def test_target_down_closes_the_dialler(net):
    # A node that is not running: the dialler's connection is closed (its link fails).
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    net.set_target(1, port)
    with dial(net, 2, 1) as s:
        assert not echoes(s)


def test_close_leaves_no_listener():
    proxy = FaultProxy([1, 2])
    port = proxy.listen_port(1, 2)
    proxy.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
