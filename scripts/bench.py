#!/usr/bin/env python3
"""kproxy against `kubectl proxy`, against nginx as a reverse proxy doing kproxy's job,
and against going direct, on one machine, in one run.

Upstream is nginx (nobody here wrote it) over TLS with a throwaway CA, checking the
bearer token and serving a Pod (~500 B), a PodList of 20,000 pods (~7 MB) and a
256 MiB file; plus the project's fake API server for watch streams, whose events
carry the time they were sent. Load comes from wrk with keep-alive; a wrk script
reports any percentile. Each load is repeated (BENCH_REPEATS, default 3) in rounds
that interleave the proxies, so that the shared machine's slow minutes fall on all
of them alike, and the median is reported.

Beyond throughput and latency it measures what a burst costs: each proxy freshly
started meets 256 new clients at once (the cold burst: its tail latency, and how
many connections it then keeps to the API server), and 512 clients connecting at
once (connections dropped from a full listen queue, SYNs sent again).

Prints a Markdown table with the ratios of kproxy to the others and writes every
raw figure to target/bench/results.json. Run it through scripts/bench.sh, which
installs nginx and wrk and builds the static binary first.
"""

import http.client
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# KPROXY_BIN measures another build (an older one, to compare).
KPROXY = Path(os.environ.get("KPROXY_BIN", ROOT / "target/x86_64-unknown-linux-musl/release/kproxy"))
FAKE = ROOT / "target/release/examples/fake_apiserver"
OUT = ROOT / "target/bench"
TOKEN = "bench-token-0123456789abcdef"
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
DURATION = os.environ.get("BENCH_DURATION", "4s")
CONNECTIONS = [1, 16, 256]
BURST_CLIENTS = 256
BURST_DURATION = "6s"
SYN_CLIENTS = 512
PROXIES = ["kproxy", "kubectl", "nginx-rp"]
COLUMNS = PROXIES + ["direct"]
POD = "/api/v1/namespaces/default/pods/bench"
PODLIST = "/api/v1/namespaces/bench/pods"
LARGE = "/large"
LARGE_BYTES = 256 * 1024 * 1024
WATCH_EVENTS = 200

children = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd, **kw):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    children.append(proc)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def rss_kib(pid):
    return family_kib(pid, "VmRSS")


def hwm_kib(pid):
    return family_kib(pid, "VmHWM")


def cpu_seconds(pid):
    """User + system CPU time of a process and its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def family(pid):
    """A process and its children (nginx's master and its workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [pid] + kids


def family_cpu(pid):
    return sum(cpu_seconds(p) for p in family(pid))


def family_kib(pid, field):
    return sum(int(status(p)[field].split()[0]) for p in family(pid))


def tcp_counters():
    """The kernel's TcpExt counters (system-wide), as `nstat` reads them."""
    lines = [l.split() for l in Path("/proc/net/netstat").read_text().splitlines()
             if l.startswith("TcpExt:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def established_to(port, pids):
    """TCP connections of these processes established to a local port."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"dport = :{port}"],
                         capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines()
               if any(f"pid={p}," in line for p in pids))


def get(port, path, tls_ca=None, timeout=2.0, token=TOKEN):
    """One GET; returns the status (0 if nothing answered)."""
    try:
        if tls_ca:
            ctx = ssl.create_default_context(cafile=tls_ca)
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
            headers = {"Authorization": f"Bearer {token}"}
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            headers = {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response.status
    except OSError:
        return 0


def accepted(status_port):
    """Connections the API server (nginx) has accepted so far: each one a TLS
    handshake, since nothing else connects to it during a burst."""
    conn = http.client.HTTPConnection("127.0.0.1", status_port, timeout=5)
    conn.request("GET", "/status")
    text = conn.getresponse().read().decode()
    conn.close()
    # "Active connections: N \nserver accepts handled requests\n A H R \n..."
    return int(text.splitlines()[2].split()[0]) - 1  # less this status request


def wait_ready(port, path=POD, tls_ca=None, limit=30.0, token=TOKEN):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if get(port, path, tls_ca, timeout=1.0, token=token) == 200:
            return
        time.sleep(0.001)
    raise SystemExit(f"nothing answered on port {port}")


# --- the upstream: nginx with TLS and a bearer-token check -----------------------------

def make_certs(work):
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{work}/ca.key", "-out", f"{work}/ca.crt", "-days", "2",
            "-subj", "/CN=bench CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{work}/server.key", "-out", f"{work}/server.csr", "-subj", "/CN=127.0.0.1")
    Path(f"{work}/san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", f"{work}/server.csr", "-CA", f"{work}/ca.crt",
            "-CAkey", f"{work}/ca.key", "-CAcreateserial", "-out", f"{work}/server.crt",
            "-days", "2", "-extfile", f"{work}/san.ext")


def pod(name, rv):
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "default", "uid": f"00000000-0000-0000-0000-{rv:012d}",
                     "resourceVersion": str(rv), "creationTimestamp": "2026-11-28T00:00:00Z",
                     "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "main", "image": "curlimages/curl:8.11.1",
                                 "command": ["sleep", "9999999"]}],
                 "serviceAccountName": "default", "nodeName": "node-1"},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "hostIP": "192.0.2.1"},
    }


def make_docroot(work):
    root = Path(work) / "www"
    (root / "api/v1/namespaces/default/pods").mkdir(parents=True)
    (root / "api/v1/namespaces/bench").mkdir(parents=True)
    (root / POD.lstrip("/")).write_text(json.dumps(pod("bench", 1)))
    items = [pod(f"pod-{i}", 10 + i) for i in range(20000)]
    podlist = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "99"}, "items": items}
    (root / PODLIST.lstrip("/")).write_text(json.dumps(podlist))
    with open(root / LARGE.lstrip("/"), "wb") as f:
        f.truncate(LARGE_BYTES)
    subprocess.run(["chmod", "-R", "a+rX", work], check=True)
    return root


def start_nginx(work, port, status_port):
    """The API server: nginx over TLS. `status_port` serves its stub_status on
    plain HTTP (its `accepts` counts the connections the proxies opened)."""
    conf = Path(work) / "nginx.conf"
    conf.write_text(f"""
worker_processes 2;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    sendfile on;
    server {{
        # h2 too, as the API server speaks it (kubectl proxy uses it; kproxy asks for 1.1).
        listen 127.0.0.1:{port} ssl http2 backlog=4096;
        ssl_certificate {work}/server.crt;
        ssl_certificate_key {work}/server.key;
        default_type application/json;
        root {work}/www;
        location / {{
            if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}
        }}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        location = /status {{ stub_status; }}
    }}
}}
""")
    proc = spawn(["nginx", "-c", str(conf)])
    wait_ready(port, tls_ca=f"{work}/ca.crt")
    return proc


def nginx_rp_conf(work, name, port, upstream_port, ca, token):
    """nginx as a reverse proxy doing kproxy's job: TLS to the API server,
    verified against its CA, with a keep-alive pool, the token added, and
    answers streamed (no buffering). Returns the path of its configuration."""
    conf = Path(work) / f"{name}.conf"
    conf.write_text(f"""
worker_processes 2;
daemon off;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/{name}-body;
    proxy_temp_path {work}/{name}-proxy;
    fastcgi_temp_path {work}/{name}-fastcgi;
    uwsgi_temp_path {work}/{name}-uwsgi;
    scgi_temp_path {work}/{name}-scgi;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    upstream apiserver {{
        server 127.0.0.1:{upstream_port};
        keepalive 512;                       # idle upstream connections kept per worker
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass https://apiserver;
            proxy_http_version 1.1;
            proxy_set_header Connection "";  # keep-alive upstream
            proxy_set_header Host 127.0.0.1:{upstream_port};
            proxy_set_header Authorization "Bearer {token}";
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_name localhost;        # a DNS SAN of the test certificates
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
            proxy_buffering off;             # stream answers, as kproxy does
            proxy_read_timeout 3600s;        # watches
        }}
    }}
}}
""")
    return conf


# --- the three ways in -------------------------------------------------------------------

class Target:
    def __init__(self, name, port=None, proc=None, tls_ca=None):
        self.name, self.port, self.proc, self.tls_ca = name, port, proc, tls_ca

    def url(self, path):
        scheme = "https" if self.tls_ca else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def auth(self):
        return ["-H", f"Authorization: Bearer {TOKEN}"] if self.tls_ca else []


def kproxy_cmd(server, ca, token_file, port):
    return [str(KPROXY), "--server", server, "--certificate-authority", ca,
            "--token-file", token_file, "--port", str(port)]


def kubectl_cmd(server, ca, port, token=TOKEN):
    return ["kubectl", "proxy", f"--server={server}", f"--certificate-authority={ca}",
            f"--token={token}", f"--port={port}", "--accept-paths=^.*", "--kubeconfig=/dev/null"]


def nginx_rp_cmd(conf):
    return ["nginx", "-c", str(conf)]


def start_to_first_answer(cmd, port, runs=5):
    """Milliseconds from spawning the proxy to its first 200."""
    times = []
    for _ in range(runs):
        started = time.monotonic()
        proc = spawn(cmd)
        wait_ready(port)
        times.append((time.monotonic() - started) * 1000)
        stop(proc)
        time.sleep(0.2)
    return statistics.median(times)


# --- loads ---------------------------------------------------------------------------------

def parse_duration_ms(text):
    value = float(re.match(r"[\d.]+", text).group())
    unit = text[len(re.match(r"[\d.]+", text).group()):]
    return value * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


# wrk's done() hook prints the percentiles its --latency table leaves out.
WRK_SCRIPT = """
done = function(summary, latency, requests)
  for _, p in ipairs({50, 99, 99.9}) do
    io.write(string.format("percentile %g %d\\n", p, latency:percentile(p)))
  end
end
"""


def wrk(target, path, connections, duration=DURATION):
    threads = min(2, connections)
    script = OUT / "percentiles.lua"
    script.write_text(WRK_SCRIPT)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "-s", str(script),
           *target.auth(), target.url(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        total = int(re.search(r"(\d+) requests in", out).group(1))
        micros = dict(re.findall(r"^percentile (\S+) (\d+)$", out, re.M))
        p50, p99, p999 = (int(micros[p]) / 1000 for p in ["50", "99", "99.9"])
    except (AttributeError, ValueError, KeyError):
        raise SystemExit(f"{target.name}: cannot read wrk's output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{target.name}: {errors.group(1)} failed requests:\n{out}")
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "p999_ms": p999, "requests": total,
            "socket_errors": socket_errors.group(1) if socket_errors else None}


def connect_at_once(port, clients=SYN_CLIENTS, limit=10.0):
    """Opens `clients` TCP connections at the same moment; returns how many
    the kernel dropped from the listen queue and how many SYNs were sent again."""
    before = tcp_counters()
    socks = []
    for _ in range(clients):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    deadline = time.monotonic() + limit
    pending = list(socks)
    while pending and time.monotonic() < deadline:
        _, writable, _ = select.select([], pending, [], 0.1)
        pending = [s for s in pending if s not in writable]
    after = tcp_counters()
    for s in socks:
        s.close()
    return {"listen_overflows": after["ListenOverflows"] - before["ListenOverflows"],
            "syn_retransmits": after["TCPSynRetrans"] - before["TCPSynRetrans"],
            "not_connected": len(pending)}


def stream_large(target):
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}",
           *target.auth(), target.url(LARGE)]
    if target.tls_ca:
        cmd += ["--cacert", target.tls_ca]
    speed, size = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    if int(size) != LARGE_BYTES:
        raise SystemExit(f"{target.name}: streamed {size} bytes, not {LARGE_BYTES}")
    return float(speed) / (1024 * 1024)


def watch_latencies(port, tls_ca=None, token=None):
    """Per-event delay (ms) between the fake API server sending and us receiving."""
    path = f"/api/v1/namespaces/default/pods?watch=1&events={WATCH_EVENTS}&interval_ms=10"
    if tls_ca:
        ctx = ssl.create_default_context(cafile=tls_ca)
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
        headers = {"Authorization": f"Bearer {token}"}
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    delays = []
    for line in response:
        received = time.time_ns() // 1000
        sent = json.loads(line)["sentMicros"]
        delays.append((received - sent) / 1000)
    conn.close()
    if len(delays) != WATCH_EVENTS:
        raise SystemExit(f"watch on port {port}: {len(delays)} events")
    return delays


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


# --- the run -------------------------------------------------------------------------------

def main():
    OUT.mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kproxy-bench-")
    os.chmod(work, 0o755)
    have_kubectl = shutil.which("kubectl") is not None
    if not have_kubectl:
        log("kubectl is not installed: the kubectl proxy column is skipped")
    try:
        return run(work, have_kubectl)
    finally:
        for proc in children:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def run(work, have_kubectl):
    log("setting up nginx, certificates and documents")
    make_certs(work)
    make_docroot(work)
    token_file = f"{work}/token"
    Path(token_file).write_text(TOKEN)
    ca = f"{work}/ca.crt"
    nginx_port, status_port = free_port(), free_port()
    start_nginx(work, nginx_port, status_port)
    server = f"https://127.0.0.1:{nginx_port}"

    ports = {name: free_port() for name in PROXIES}
    rp_conf = nginx_rp_conf(work, "nginx-rp", ports["nginx-rp"], nginx_port, ca, TOKEN)
    commands = {
        "kproxy": kproxy_cmd(server, ca, token_file, ports["kproxy"]),
        "kubectl": kubectl_cmd(server, ca, ports["kubectl"]),
        "nginx-rp": nginx_rp_cmd(rp_conf),
    }
    proxies = [n for n in PROXIES if n != "kubectl" or have_kubectl]
    results = {name: {} for name in COLUMNS}

    log("start to first answer")
    for name in proxies:
        results[name]["start_ms"] = start_to_first_answer(commands[name], ports[name])

    log(f"cold burst: each proxy freshly started, {BURST_CLIENTS} new clients at once")
    bursts = {name: [] for name in proxies}
    for _ in range(REPEATS):
        for name in proxies:
            proc = spawn(commands[name])
            wait_ready(ports[name])
            target = Target(name, ports[name], proc)
            before = accepted(status_port)
            run = wrk(target, POD, BURST_CLIENTS, BURST_DURATION)
            run["handshakes"] = accepted(status_port) - before
            time.sleep(2)
            run["upstream_after_2s"] = established_to(nginx_port, family(proc.pid))
            bursts[name].append(run)
            stop(proc)
            time.sleep(0.5)
    for name, runs in bursts.items():
        results[name]["burst"] = {
            "p99_ms": median_of(runs, "p99_ms"), "p999_ms": median_of(runs, "p999_ms"),
            "rps": median_of(runs, "rps"), "upstream_after_2s": median_of(runs, "upstream_after_2s"),
            "handshakes": median_of(runs, "handshakes"),
            "runs": runs,
        }

    targets = {"direct": Target("direct", nginx_port, None, ca)}
    for name in proxies:
        targets[name] = Target(name, ports[name], spawn(commands[name]))
        wait_ready(ports[name])

    time.sleep(1)
    for name in proxies:
        results[name]["idle_rss_kib"] = rss_kib(targets[name].proc.pid)

    log(f"{SYN_CLIENTS} clients connecting at once")
    for name in proxies:
        results[name]["syn"] = connect_at_once(ports[name])
        time.sleep(1)

    log("streaming 256 MiB")
    for name, target in targets.items():
        before = hwm_kib(target.proc.pid) if target.proc else None
        speeds = [stream_large(target) for _ in range(REPEATS)]
        results[name]["stream_mib_s"] = statistics.median(speeds)
        results[name]["stream_runs"] = speeds
        if target.proc:
            results[name]["stream_peak_rss_kib"] = hwm_kib(target.proc.pid)
            results[name]["rss_before_stream_kib"] = before

    log("PodList of 20,000 pods")
    podlists = {name: [] for name in targets}
    for _ in range(REPEATS):
        for name, target in targets.items():
            podlists[name].append(wrk(target, PODLIST, 4))
    for name, runs in podlists.items():
        results[name]["podlist_rps_4"] = median_of(runs, "rps")

    gets = {(name, n): [] for name in targets for n in CONNECTIONS}
    for round_number in range(REPEATS):
        for connections in CONNECTIONS:
            log(f"Pod GET at {connections} connection(s), round {round_number + 1} of {REPEATS}")
            for name, target in targets.items():
                cpu_before = family_cpu(target.proc.pid) if target.proc else 0
                run = wrk(target, POD, connections)
                if target.proc:
                    cpu = family_cpu(target.proc.pid) - cpu_before
                    run["cpu_us_per_request"] = cpu / run["requests"] * 1e6
                gets[(name, connections)].append(run)
    for (name, connections), runs in gets.items():
        keys = ["rps", "p50_ms", "p99_ms", "p999_ms"]
        if targets[name].proc:
            keys.append("cpu_us_per_request")
        summary = {k: median_of(runs, k) for k in keys}
        summary["runs"] = runs
        results[name][f"c{connections}"] = summary
    for name in proxies:
        results[name]["peak_rss_kib"] = hwm_kib(targets[name].proc.pid)
        results[name]["upstream_after_load"] = established_to(nginx_port, family(targets[name].proc.pid))

    log("watch event latency")
    fake_port = free_port()
    sa = f"{work}/fake-sa"
    spawn([str(FAKE), sa, str(fake_port)])
    wait_for_file(f"{sa}/token")
    fake_token = Path(f"{sa}/token").read_text().strip()
    wait_ready(fake_port, "/api", tls_ca=f"{sa}/ca.crt", token=fake_token)
    fake_server = f"https://127.0.0.1:{fake_port}"
    watchers = {"direct": (fake_port, f"{sa}/ca.crt", fake_token)}
    watch_ports = {name: free_port() for name in proxies}
    watch_commands = {
        "kproxy": kproxy_cmd(fake_server, f"{sa}/ca.crt", f"{sa}/token", watch_ports["kproxy"]),
        "nginx-rp": nginx_rp_cmd(nginx_rp_conf(work, "nginx-rp-watch", watch_ports["nginx-rp"],
                                               fake_port, f"{sa}/ca.crt", fake_token)),
    }
    if have_kubectl:
        watch_commands["kubectl"] = kubectl_cmd(fake_server, f"{sa}/ca.crt", watch_ports["kubectl"],
                                                fake_token)
    for name in proxies:
        spawn(watch_commands[name])
        wait_ready(watch_ports[name], "/api")
        watchers[name] = (watch_ports[name], None, None)
    for name, (port, tls_ca, token) in watchers.items():
        delays = []
        for _ in range(REPEATS):
            delays += watch_latencies(port, tls_ca, token)
        results[name]["watch_p50_ms"] = percentile(delays, 50)
        results[name]["watch_p99_ms"] = percentile(delays, 99)
    for name in proxies:
        results[name]["watch_added_p50_ms"] = results[name]["watch_p50_ms"] - results["direct"]["watch_p50_ms"]
        results[name]["watch_added_p99_ms"] = results[name]["watch_p99_ms"] - results["direct"]["watch_p99_ms"]

    results["kproxy"]["binary_bytes"] = KPROXY.stat().st_size
    if have_kubectl:
        results["kubectl"]["binary_bytes"] = Path(shutil.which("kubectl")).resolve().stat().st_size
        results["kubectl"]["version"] = subprocess.run(
            ["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True
        ).stdout
    results["nginx-rp"]["version"] = subprocess.run(
        ["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    machine = {
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "kernel": platform.release(),
        "repeats": REPEATS,
        "duration": DURATION,
    }
    (OUT / "results.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(table(results, machine))
    return 0


def wait_for_file(path, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if Path(path).exists():
            time.sleep(0.2)
            return
        time.sleep(0.05)
    raise SystemExit(f"{path} never appeared")


def table(results, machine):
    rows = []

    def row(label, key, fmt, scale=1.0, sub=None):
        def value(name):
            data = results.get(name, {})
            data = data.get(sub, {}) if sub else data
            v = data.get(key)
            return None if v is None else v * scale

        values = [value(name) for name in COLUMNS]
        show = lambda v: "—" if v is None else fmt.format(v)
        ratio = lambda a, b: "—" if a is None or b is None or not b else f"{a / b:.2f}×"
        k = values[0]
        ratios = [ratio(k, other) for other in values[1:]]
        rows.append("| " + " | ".join([label] + [show(v) for v in values] + ratios) + " |")

    for n in CONNECTIONS:
        row(f"Pod GET, {n} conn: requests/s", "rps", "{:,.0f}", sub=f"c{n}")
        row(f"Pod GET, {n} conn: p50 ms", "p50_ms", "{:.3f}", sub=f"c{n}")
        row(f"Pod GET, {n} conn: p99 ms", "p99_ms", "{:.3f}", sub=f"c{n}")
        row(f"Pod GET, {n} conn: CPU µs per request", "cpu_us_per_request", "{:.0f}", sub=f"c{n}")
    row("Pod GET, 256 conn: p99.9 ms", "p999_ms", "{:.3f}", sub="c256")
    row(f"Cold burst ({BURST_CLIENTS} new clients, fresh proxy, {BURST_DURATION}): p99 ms",
        "p99_ms", "{:.1f}", sub="burst")
    row("Cold burst: p99.9 ms", "p999_ms", "{:.1f}", sub="burst")
    row("Cold burst: connections (TLS handshakes) the API server accepted", "handshakes", "{:.0f}", sub="burst")
    row("API server connections 2 s after the burst", "upstream_after_2s", "{:.0f}", sub="burst")
    row("API server connections after the loads", "upstream_after_load", "{:.0f}")
    row(f"{SYN_CLIENTS} clients connecting at once: dropped from the listen queue",
        "listen_overflows", "{:.0f}", sub="syn")
    row(f"{SYN_CLIENTS} clients connecting at once: SYNs sent again", "syn_retransmits", "{:.0f}",
        sub="syn")
    row("PodList 20,000 pods, 4 conn: requests/s", "podlist_rps_4", "{:,.1f}")
    row("Start to first answer, ms", "start_ms", "{:.1f}")
    row("RSS idle, MiB", "idle_rss_kib", "{:.1f}", scale=1 / 1024)
    row("RSS peak (after 256 conn), MiB", "peak_rss_kib", "{:.1f}", scale=1 / 1024)
    row("256 MiB stream: MiB/s", "stream_mib_s", "{:,.0f}")
    row("256 MiB stream: RSS before, MiB", "rss_before_stream_kib", "{:.1f}", scale=1 / 1024)
    row("256 MiB stream: peak RSS, MiB", "stream_peak_rss_kib", "{:.1f}", scale=1 / 1024)
    row("Watch event delay p50, ms", "watch_p50_ms", "{:.3f}")
    row("Watch event delay p99, ms", "watch_p99_ms", "{:.3f}")
    row("Watch event added p50, ms", "watch_added_p50_ms", "{:.3f}")
    row("Watch event added p99, ms", "watch_added_p99_ms", "{:.3f}")
    row("Binary size, MiB", "binary_bytes", "{:.1f}", scale=1 / 2**20)
    head = (f"Measured {machine['date']} on {machine['cores']} cores, {machine['memory_gib']} GiB "
            f"(Linux {machine['kernel']}); medians of {machine['repeats']} interleaved rounds "
            f"of {machine['duration']}.\n\n"
            "| | kproxy | kubectl proxy | nginx-rp | direct TLS "
            "| kproxy/kubectl | kproxy/nginx-rp | kproxy/direct |\n"
            "|---|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(rows)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
