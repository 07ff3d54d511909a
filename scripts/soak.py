#!/usr/bin/env python3
"""Soak: a bounded mix of good, broken and hostile traffic for a few minutes, while
the fake API server restarts and drops connections at random. At the end every
good request must have had its right answer (or, within a few seconds of an API
server restart, a 502/504 Status), and kproxy must be alive with its open files,
threads and memory back where they started. Run through scripts/soak.sh.

SOAK_SECONDS (default 180) sets the length.
"""

import http.client
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KPROXY = ROOT / "target/x86_64-unknown-linux-musl/release/kproxy"
FAKE = ROOT / "target/release/examples/fake_apiserver"
SECONDS = int(os.environ.get("SOAK_SECONDS", "180"))
MAX_CONNECTIONS = 64
RESTART_GRACE = 6.0  # seconds after a restart in which 502/504 are expected

counts = Counter()
failures = []
restarts = []
lock = threading.Lock()


def note(kind):
    with lock:
        counts[kind] += 1


def fail(kind, detail):
    with lock:
        failures.append(f"{kind}: {detail}")


def near_restart():
    now = time.monotonic()
    return any(0 <= now - r <= RESTART_GRACE for r in restarts)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fake:
    """The fake API server, restartable on the same port."""

    def __init__(self, sa, port):
        self.sa, self.port, self.proc = sa, port, None

    def start(self):
        self.proc = subprocess.Popen([str(FAKE), self.sa, str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.proc.stdout.readline()

    def restart(self):
        with lock:
            restarts.append(time.monotonic())
        self.proc.kill()
        self.proc.wait()
        time.sleep(random.uniform(0.1, 1.0))
        self.start()


UPSTREAM_PORT = None  # set in main: the fake API server's port


def upstream_sockets(pid):
    """How many of kproxy's descriptors are connections to the API server (the
    pool, which may hold more idle connections after a busy spell than before)."""
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(name).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == UPSTREAM_PORT:
                inodes.add(fields[9])
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        count += target.startswith("socket:[") and target[8:-1] in inodes
    return count


def footprint(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    field = lambda name: int(re.search(rf"{name}:\s+(\d+)", status).group(1))
    pooled = upstream_sockets(pid)
    fds = len(os.listdir(f"/proc/{pid}/fd")) - pooled
    return {"fds": fds, "pooled": pooled, "threads": field("Threads"), "rss_kib": field("VmRSS")}


def settle(pid):
    """Waits until only the main and signal threads remain and fds stop moving."""
    deadline = time.monotonic() + 30
    last = footprint(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = footprint(pid)
        if now["threads"] == 2 and now["fds"] == last["fds"]:
            return now
        last = now
    return last


def raw(port, data, read=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def status_of(reply):
    m = re.match(rb"HTTP/1\.1 (\d{3})", reply)
    return int(m.group(1)) if m else 0


# --- the mix ----------------------------------------------------------------------------

def good(port):
    name = f"pod-{random.randint(0, 10**6)}"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        c.request("GET", f"/api/v1/namespaces/default/pods/{name}")
        r = c.getresponse()
        body = r.read().decode()
    except OSError as e:
        return fail("good", f"no answer: {e}")
    finally:
        c.close()
    if r.status == 200 and f'"name":"{name}"' in body:
        return note("good: right answer")
    if r.status in (502, 504) and '"kind":"Status"' in body and near_restart():
        return note("good: 502/504 during an API server restart")
    if r.status == 503 and "--max-connections" in body:
        return note("good: 503 while a flood held every connection")
    fail("good", f"{r.status} {body[:200]}")


def watch(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        c.request("GET", "/api/v1/namespaces/default/pods?watch=1&events=5&interval_ms=20")
        r = c.getresponse()
        body = r.read().decode()
    except (OSError, http.client.HTTPException) as e:
        if near_restart():
            return note("watch: cut by an API server restart")
        return fail("watch", f"{e}")
    finally:
        c.close()
    if r.status == 200 and body.count('"type":"ADDED"') == 5:
        return note("watch: all events")
    if r.status in (502, 503, 504) and near_restart() or r.status == 503:
        return note("watch: refused during a restart or a flood")
    fail("watch", f"{r.status} {body[:200]}")


MALFORMED = [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
    (b"HELLO\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400),
    (b"GET /api HTTP/1.1\r\nHost: localhost\r\nA: b\r\n folded\r\n\r\n", 400),
    (b"GET /api HTTP/1.1\nHost: localhost\n\n", 400),
    (b"GET /api/v1/namespaces/default/pods/p/%65xec HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 403),
    (b"GET /api HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", 403),
]


def malformed(port):
    request, want = random.choice(MALFORMED)
    try:
        got = status_of(raw(port, request))
    except OSError as e:
        return fail("malformed", f"{e}")
    if got == want or got == 503:
        return note(f"refused: {want}" if got == want else "refused: 503 (flood)")
    fail("malformed", f"{request[:60]!r}: {got}, wanted {want}")


def vanish_mid_request(port):
    raw(port, b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nabc", read=False)
    note("client vanished mid-request")


def vanish_mid_response(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /bytes?n=5000000&chunked=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    s.recv(1000)
    s.close()
    note("client vanished mid-response")


def slowloris(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    started = time.monotonic()
    try:
        for byte in b"GET /api HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100:
            s.sendall(bytes([byte]))
            time.sleep(0.2)
            if time.monotonic() - started > 10:
                break
        reply = s.recv(1000)
    except OSError:
        reply = b""
    finally:
        s.close()
    if status_of(reply) in (408, 503) or reply == b"":
        return note("slowloris dropped")
    fail("slowloris", reply[:100])


def flood(port):
    socks = []
    for _ in range(MAX_CONNECTIONS + 30):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    time.sleep(0.2)
    for s in socks:
        s.close()
    note("flood past the connection cap")


def misbehaving_upstream(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        c.request("GET", random.choice(["/misbehave/drop", "/misbehave/garbage", "/misbehave/cut"]))
        r = c.getresponse()
        r.read()
        note(f"API server misbehaved: {r.status}")
    except (OSError, http.client.HTTPException):
        note("API server misbehaved: cut")
    finally:
        c.close()


MIX = [(good, 40), (watch, 10), (malformed, 20), (vanish_mid_request, 5), (vanish_mid_response, 5),
       (misbehaving_upstream, 5), (slowloris, 0.5), (flood, 0.1)]


def worker(port, deadline):
    kinds, weights = zip(*MIX)
    while time.monotonic() < deadline:
        kind = random.choices(kinds, weights)[0]
        try:
            kind(port)
        except Exception as e:  # a broken client must not end the soak
            if not near_restart():
                fail(kind.__name__, repr(e))


def main():
    work = tempfile.mkdtemp(prefix="kproxy-soak-")
    global UPSTREAM_PORT
    fake = Fake(f"{work}/sa", free_port())
    UPSTREAM_PORT = fake.port
    fake.start()
    port = free_port()
    env = dict(os.environ, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(fake.port))
    kproxy = subprocess.Popen([str(KPROXY), "--serviceaccount-dir", f"{work}/sa", "--port", str(port),
                               "--max-connections", str(MAX_CONNECTIONS), "--header-timeout", "3s",
                               "--idle-timeout", "5s"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    kproxy.stdout.readline()
    try:
        for _ in range(50):
            good(port)
        before = settle(kproxy.pid)
        started = time.monotonic()
        deadline = started + SECONDS
        workers = [threading.Thread(target=worker, args=(port, deadline)) for _ in range(6)]
        for w in workers:
            w.start()
        while time.monotonic() < deadline - 5:
            time.sleep(random.uniform(10, 25))
            if time.monotonic() < deadline - 5:
                fake.restart()
        for w in workers:
            w.join()
        alive = kproxy.poll() is None
        after = settle(kproxy.pid) if alive else None
    finally:
        kproxy.kill()
        fake.proc.kill()

    print(f"soak: {SECONDS}s, {len(restarts)} API server restarts, {sum(counts.values())} operations")
    for kind, n in sorted(counts.items()):
        print(f"  {n:7d}  {kind}")
    print(f"kproxy alive: {alive}")
    if after:
        print(f"open fds (besides pooled API server connections) {before['fds']} -> {after['fds']}, "
              f"pooled {before['pooled']} -> {after['pooled']}, threads {before['threads']} -> {after['threads']}, "
              f"RSS {before['rss_kib']} KiB -> {after['rss_kib']} KiB")
    ok = alive and not failures and after and after["fds"] == before["fds"] \
        and after["threads"] == before["threads"] and after["rss_kib"] <= before["rss_kib"] + 1024
    for f in failures[:20]:
        print(f"FAILED {f}")
    print(f"{sum(counts.values())} passed, {len(failures)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
