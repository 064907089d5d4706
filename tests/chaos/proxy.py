"""A TCP fault proxy between the nodes of a local cluster, run in the test's own process.

It owns one listening socket per ORDERED node pair (i, j), i != j, on 127.0.0.1: node i's
controller.quorum.voters names peer j at that port (cluster_harness.Cluster's voter_port), and
the proxy forwards what arrives there to j's real cluster port. The cluster transport dials one
connection per ordered pair and sends i's Raft messages and RPCs to j over i's own connection
(src/cluster/tcp_transport.h), so the pair (i, j) carries exactly the traffic from i to j and
cutting it is a one-way partition; cutting (i, j) and (j, i) separates i and j both ways.

Faults, applied at once and in force until changed:
  - cut(pairs): closes the pairs' open connections (abort, no lingering data) and accepts then
    closes every new one, so the dialler sees the link fail and redials into the same wall;
  - heal(pairs=None): forwards again (every pair when None), and drops any delay;
  - delay(pairs, ms): holds every chunk ms milliseconds before forwarding it, in order
    (latency only: chunks queue, they are not forwarded one delay after another).
Each control call returns once the proxy's loop applied it. Everything runs on one asyncio loop
in a daemon thread; close() stops it and closes every socket, so nothing outlives the run.
"""

import asyncio
import socket
import threading
import time

CHUNK_BYTES = 65536


class _Conn:
    """One proxied connection: the accepted side and the side dialled to the target."""

    def __init__(self, client):
        self.client = client
        self.server = None

    def abort(self):
        for w in (self.client, self.server):
            if w is not None:
                w.transport.abort()


class FaultProxy:
    def __init__(self, node_ids):
        self.node_ids = list(node_ids)
        self.pairs = [(i, j) for i in self.node_ids for j in self.node_ids if i != j]
        self._targets = {}
        self._cut = set()
        self._delay_s = {}
        self._conns = {pair: set() for pair in self.pairs}
        self._socks = {}
        for pair in self.pairs:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            self._socks[pair] = s
        self._loop = asyncio.new_event_loop()
        self._servers = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        self._ready.wait()

    # --- control (any thread) ---

    def listen_port(self, i, j):
        """The port node i dials to reach node j."""
        return self._socks[(i, j)].getsockname()[1]

    def set_target(self, j, port):
        """j's real cluster port, where every pair (i, j) forwards to."""
        self._call(self._targets.__setitem__, j, port)

    def cut(self, pairs):
        self._call(self._apply_cut, set(pairs))

    def heal(self, pairs=None):
        self._call(self._apply_heal, set(self.pairs if pairs is None else pairs))

    def delay(self, pairs, ms):
        self._call(self._apply_delay, set(pairs), ms / 1000.0)

    def isolate(self, node):
        """Cuts every pair from and to node."""
        self.cut(self.pairs_of(node))

    def pairs_of(self, node):
        return [p for p in self.pairs if node in p]

    def state(self):
        """(cut pairs, {pair: delay ms}) as the loop holds them."""
        return self._call(lambda: (set(self._cut), {
            p: round(d * 1000) for p, d in self._delay_s.items()}))

    def close(self):
        if not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- the loop ---

    def _call(self, fn, *args):
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.run_forever()

    async def _listen(self):
        for pair, sock in self._socks.items():
            server = await asyncio.start_server(
                lambda r, w, pair=pair: self._accept(pair, r, w), sock=sock)
            self._servers.append(server)

    async def _shutdown(self):
        for server in self._servers:
            server.close()
        for conns in self._conns.values():
            for c in list(conns):
                c.abort()
            conns.clear()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _apply_cut(self, pairs):
        self._cut |= pairs
        for pair in pairs:
            for c in list(self._conns[pair]):
                c.abort()
            self._conns[pair].clear()

    def _apply_heal(self, pairs):
        self._cut -= pairs
        for pair in pairs:
            self._delay_s.pop(pair, None)

    def _apply_delay(self, pairs, delay_s):
        for pair in pairs:
            self._delay_s[pair] = delay_s

    async def _accept(self, pair, reader, writer):
        conn = _Conn(writer)
        target = self._targets.get(pair[1])
        if pair in self._cut or target is None:
            conn.abort()
            return
        self._conns[pair].add(conn)
        try:
            try:
                up_reader, conn.server = await asyncio.open_connection("127.0.0.1", target)
            except OSError:
                return  # the target node is down: the dialler sees its link fail
            if conn not in self._conns[pair]:
                return  # cut while dialling
            await asyncio.gather(self._pump(pair, reader, conn.server),
                                 self._pump(pair, up_reader, writer))
        finally:
            conn.abort()
            self._conns[pair].discard(conn)

    async def _pump(self, pair, reader, writer):
        """Forwards reader to writer until either side ends; each chunk is held for the pair's
        delay at the moment it arrived (a queue, so a delay adds latency, not a rate limit)."""
        queue = asyncio.Queue()

        async def send():
            while True:
                due, data = await queue.get()
                if data is None:
                    return
                wait_s = due - time.monotonic()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while not sender.done():
                try:
                    data = await reader.read(CHUNK_BYTES)
                except (ConnectionError, OSError):
                    data = b""
                if not data:
                    break
                queue.put_nowait((time.monotonic() + self._delay_s.get(pair, 0.0), data))
            queue.put_nowait((0, None))
            await sender
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            writer.transport.abort()
