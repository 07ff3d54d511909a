"""Two kproxy builds, one upstream, interleaved wrk rounds: see scripts/bench-ab.sh.

Reuses scripts/bench.py's nginx API server, certificates, kproxy command line and
wrk runner, so the figures are comparable with the benchmark's kproxy column.
"""
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in scripts/ from importing bench
import bench  # noqa: E402

ROUNDS = int(os.environ.get("AB_ROUNDS", "6"))
DURATION = os.environ.get("AB_DURATION", "4s")
CONNECTIONS = (1, 16, 256)


def main(old, new):
    bench.OUT.mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kproxy-ab-")
    os.chmod(work, 0o755)
    bench.make_certs(work)
    bench.make_docroot(work)
    token_file = f"{work}/token"
    Path(token_file).write_text(bench.TOKEN)
    upstream = bench.free_port()
    bench.start_nginx(work, upstream, bench.free_port())
    server = f"https://127.0.0.1:{upstream}"
    targets = {}
    try:
        for name, binary in (("old", old), ("new", new)):
            bench.KPROXY = Path(binary)
            port = bench.free_port()
            proc = bench.spawn(bench.kproxy_cmd(server, f"{work}/ca.crt", token_file, port))
            bench.wait_ready(port)
            targets[name] = bench.Target(name, port, proc)
        rounds = {(name, c): [] for name in targets for c in CONNECTIONS}
        for r in range(ROUNDS):
            bench.log(f"round {r + 1} of {ROUNDS}")
            for connections in CONNECTIONS:
                order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
                for name in order:
                    rounds[(name, connections)].append(measure(targets[name], connections))
        report(rounds)
    finally:
        for proc in bench.children:
            bench.stop(proc)


def measure(target, connections):
    before = bench.cpu_seconds(target.proc.pid)
    run = bench.wrk(target, bench.POD, connections, DURATION)
    cpu = bench.cpu_seconds(target.proc.pid) - before
    return run["rps"], cpu / run["requests"] * 1e6


def report(rounds):
    print(f"Pod GET, {ROUNDS} interleaved rounds of {DURATION} each "
          "(requests/s, CPU µs per request; old = the commit given, new = the checkout):")
    for connections in CONNECTIONS:
        for name in ("old", "new"):
            runs = rounds[(name, connections)]
            each = ", ".join(f"{rps:,.0f}/{cpu:.0f}" for rps, cpu in runs)
            rps = statistics.median(r for r, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(f"{connections:>3} conn {name}: median {rps:,.0f} req/s, {cpu:.0f} µs; rounds {each}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
