"""The integration harness: real chronik brokers on loopback for real Kafka clients.

It owns every broker process the tests start. Each broker gets free ports (Kafka, HTTP and
cluster RPC, picked by binding port 0) and its own data directory under pytest's tmp_path; the
harness waits for the broker's start-up line, failing fast with the broker's stderr when it
exits first, and stops it with SIGTERM at the end, asserting a clean exit (status 0). A broker
that does not stop in time is killed and the test fails. No broker outlives the session: every
started process is tracked and killed at session end and at interpreter exit, also after a
failing test; and the kernel kills a broker whose pytest process died (PR_SET_PDEATHSIG).

The path to the binary comes from CHRONIK_BIN (ctest sets it), defaulting to
build/release/chronik in the repository. Python clients only load under /usr/bin/python3 (the
Debian packages), so run the suite with `/usr/bin/python3 -m pytest tests/integration`.
"""

import atexit
import ctypes
import os
import random
import signal
import socket
import subprocess
import time

import pytest

import helpers

REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHRONIK_BIN = os.environ.get("CHRONIK_BIN", os.path.join(REPO_DIR, "build", "release", "chronik"))

# The broker's defaults the tests rely on: the largest record batch a produce may append.
MESSAGE_MAX_BYTES = 1048588

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
START_ATTEMPTS_MAX = 5

_live = set()
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child before exec: the kernel kills the broker if pytest dies without
    # cleaning up (for instance when ctest kills it at its timeout).
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_all():
    for proc in list(_live):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _live.discard(proc)


atexit.register(_kill_all)


def _below_ephemeral_range():
    """The ports below the kernel's ephemeral range (from 10000), or None."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return range(10000, low) if low > 11000 else None


def free_ports(count):
    """Returns count distinct ports that were free a moment ago on 127.0.0.1. They are taken
    below the kernel's ephemeral range when there is one: a port the kernel handed out for a
    bind to port 0 can be given to another process's outgoing connection (a client of a test
    running beside this one) before the broker binds it, which made a node fail with "Address
    already in use"."""
    socks = []
    candidates = _below_ephemeral_range()
    try:
        while len(socks) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", random.SystemRandom().choice(candidates)
                        if candidates is not None else 0))
            except OSError:
                s.close()
                continue
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class BrokerError(Exception):
    pass


class Broker:
    """One chronik process on a fixed data directory; it can be killed and restarted there."""

    def __init__(self, data_dir, extra_args=()):
        self.data_dir = str(data_dir)
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self.http_port = None
        self.cluster_port = None
        self.starts = 0
        self.served = False
        os.makedirs(self.data_dir, exist_ok=True)

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.proc.pid

    def _log_path(self, name):
        return os.path.join(os.path.dirname(self.data_dir), "%s.%s.%d" % (
            os.path.basename(self.data_dir), name, self.starts))

    def stderr_text(self):
        path = self._log_path("stderr")
        if not os.path.exists(path):
            return ""
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-8000:]

    def start(self):
        """Starts the broker and waits for its start-up line. Keeps its ports after it first
        served, so clients reconnect after a restart; until then, ports found taken (another
        process bound one between picking and binding) are replaced and the start retried."""
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        for _ in range(START_ATTEMPTS_MAX):
            if self.port is None:
                self.port, self.http_port, self.cluster_port = free_ports(3)
            if self._start_once():
                self.served = True
                return self
            if self.served:
                break
            self.port = None
        raise BrokerError("chronik did not start: its ports were taken; stderr:\n%s" % (
            self.stderr_text()))

    def launch(self):
        """Starts the process on the ports already chosen, without waiting (a cluster's nodes
        serve only once a majority of them runs)."""
        assert self.port is not None and (self.proc is None or self.proc.poll() is not None)
        self._launch()

    def wait_started(self):
        """Waits for the start-up line of a launch(); BrokerError if the node exits first."""
        if not self._wait_line():
            raise BrokerError("chronik could not bind its ports; stderr:\n%s" % (
                self.stderr_text()))
        self.served = True

    def _start_once(self):
        self._launch()
        return self._wait_line()

    def _launch(self):
        self.starts += 1
        args = [
            CHRONIK_BIN, "--port", str(self.port), "--data-dir", self.data_dir,
            "--set", "http.port=%d" % self.http_port,
            "--set", "cluster.port=%d" % self.cluster_port,
        ] + self.extra_args
        out = open(self._log_path("stdout"), "wb")
        err = open(self._log_path("stderr"), "wb")
        try:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
        finally:
            out.close()
            err.close()
        _live.add(self.proc)

    def _wait_line(self):
        expected = "kafka PLAINTEXT://127.0.0.1:%d " % self.port
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with open(self._log_path("stdout"), "rb") as f:
                text = f.read().decode("utf-8", "replace")
            if expected in text and text.startswith("chronik node"):
                return True
            if self.proc.poll() is not None:
                _live.discard(self.proc)
                # Only a port taken between picking and binding is worth another try.
                if "in use" in self.stderr_text().lower():
                    return False
                raise BrokerError("chronik exited with %d before serving; stderr:\n%s" % (
                    self.proc.returncode, self.stderr_text()))
            time.sleep(0.02)
        self.proc.kill()
        self.proc.wait()
        _live.discard(self.proc)
        raise BrokerError("chronik printed no start-up line in %.0f s; stderr:\n%s" % (
            START_TIMEOUT_S, self.stderr_text()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s=STOP_TIMEOUT_S):
        """SIGTERM, then asserts a clean shutdown (exit status 0) within timeout_s."""
        if self.proc is None:
            return
        proc = self.proc
        if proc.poll() is not None:
            _live.discard(proc)
            raise BrokerError("chronik died during the test with status %d; stderr:\n%s" % (
                proc.returncode, self.stderr_text()))
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            _live.discard(proc)
            raise BrokerError("chronik did not stop within %.0f s of SIGTERM; stderr:\n%s" % (
                timeout_s, self.stderr_text()))
        _live.discard(proc)
        if proc.returncode != 0:
            raise BrokerError("chronik exited with %d after SIGTERM; stderr:\n%s" % (
                proc.returncode, self.stderr_text()))

    def kill(self):
        """SIGKILL, as a crash: nothing gets flushed or closed."""
        assert self.alive(), "killing a broker that is not running"
        self.proc.kill()
        self.proc.wait()
        _live.discard(self.proc)

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise BrokerError("no VmRSS for pid %d" % self.proc.pid)


def _serve(data_dir):
    broker = Broker(data_dir).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def broker(tmp_path):
    """A fresh broker for one test."""
    yield from _serve(tmp_path / "data")


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory):
    """One broker shared by a module's tests; each test uses its own topics."""
    yield from _serve(tmp_path_factory.mktemp("broker") / "data")


@pytest.fixture
def make_broker(tmp_path):
    """A factory for tests that drive the broker's life themselves (kill and restart)."""
    made = []

    def make(extra_args=()):
        b = Broker(tmp_path / ("data%d" % len(made)), extra_args)
        made.append(b)
        return b

    yield make
    errors = []
    for b in made:
        if b.alive():
            try:
                b.stop()
            except BrokerError as e:
                errors.append(str(e))
    if errors:
        raise BrokerError("\n".join(errors))


@pytest.fixture
def topic(request):
    """A topic name unique to the test (and its parameters) and derived from the run's seed,
    so the data tests derive from their topic name replays with CHRONIK_IT_SEED."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")
    return "%s-%08x" % (name[:80], helpers.rng(request.node.nodeid).getrandbits(32))


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line("integration seed: CHRONIK_IT_SEED=%d (set it to replay)" %
                                helpers.SEED)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    # Runs after the fixtures' own teardown: anything still alive here was leaked.
    _kill_all()
