#!/usr/bin/env python3
"""Runs corio's benchmarks and their peers side by side (see benchmarks/README.md).

    python3 benchmarks/run.py [--quick] [--build] [--only H1,H3] [--rounds N] [--chart FILE]
    python3 benchmarks/run.py --chart FILE --chart-from benchmarks/results/latest.json

Every program runs under `setarch <arch> -R` (no address randomization), in at least
5 interleaved rounds (corio, peer A, peer B, corio, ...; --quick: small sizes, 1 round).
Each program checks its own result and prints `RESULT metric=<m> value=<v>` lines; a
program that exits non-zero is reported as FAILED. A program that is not built is
MISSING: the run says which Debian package it needs and exits non-zero (unless
--allow-missing); --build installs every peer's packages first (apt-get, as
scripts/install-deps.sh does) or, without root, stops with the exact command to run.
Prints a markdown table of medians, min-max and ratios with the bars of
BENCHMARKS.md, writes benchmarks/results/latest.json (and latest.md), and with
--chart draws the ratios as a PNG or SVG chart (python3-matplotlib).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYDIR = os.path.join(HERE, "python")
RESULT_RE = re.compile(r"^RESULT metric=(\S+) value=(\S+)\s*$")
CORES = len(os.sched_getaffinity(0))

# Metric direction: which way is better.
BETTER = {
    "tasks_per_s": "higher", "ns_per_await": "lower", "wall_ms": "lower",
    "peak_rss_mib": "lower", "msgs_per_s": "higher", "req_per_s": "higher",
    "cpu_us_per_req": "lower", "ops_per_s": "higher", "speedup": "higher",
    "items_per_s": "higher", "rtt_median_us": "lower", "rtt_p99_us": "lower",
    "jobs_per_s": "higher", "mb_per_s": "higher", "spawns_per_s": "higher",
}

# Debian packages each system's programs need, beyond what corio itself needs
# (scripts/install-deps.sh). A row whose system is not listed needs nothing more.
BASE_PACKAGES = ["util-linux"]  # setarch, taskset
PEER_PACKAGES = {
    "asio": ["libasio-dev"],
    "onetbb": ["libtbb-dev"],
    "asyncio": ["python3"],
    "mp_threadpool": ["python3"],
    "mp_pool": ["python3"],
    "mp_pipe": ["python3"],
    "mp_queue": ["python3"],
    "rq": ["python3-rq", "redis-server"],
}
# Packages every system of a row needs (corio's Redis module and the server it talks to).
ROW_PACKAGES = {
    "H9": ["libhiredis-dev", "redis-server"],
}
CHART_PACKAGES = ["python3-matplotlib"]


def missing_packages(packages):
    """The Debian packages of `packages` that dpkg does not report as installed."""
    missing = []
    for p in dict.fromkeys(packages):
        q = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if q.returncode != 0 or "install ok installed" not in q.stdout:
            missing.append(p)
    return missing


def ensure_packages(packages, why):
    """Installs missing packages through scripts/install-deps.sh (apt-get, as root or
    through sudo); without a way to install, stops with the exact command to run."""
    if not shutil.which("dpkg-query"):
        print(f"# not a Debian system: make sure these are installed for {why}: "
              f"{' '.join(packages)}", flush=True)
        return
    missing = missing_packages(packages)
    if not missing:
        return
    command = f"apt-get install -y {' '.join(missing)}"
    can_install = os.geteuid() == 0 or (shutil.which("sudo") and subprocess.run(
        ["sudo", "-n", "true"], capture_output=True).returncode == 0)
    if not can_install:
        sys.exit(f"error: {why} needs packages that are not installed; run\n"
                 f"    sudo {command}\nthen run this command again.")
    print(f"# installing for {why}: {' '.join(missing)}", flush=True)
    if subprocess.run(["bash", os.path.join(ROOT, "scripts", "install-deps.sh")] + missing).returncode != 0:
        sys.exit(f"error: installing {' '.join(missing)} failed; run\n    sudo {command}")


def peer_packages(groups):
    """Every package the selected rows' systems need."""
    packages = list(BASE_PACKAGES)
    for g in groups:
        packages += ROW_PACKAGES.get(g["id"], [])
        for system, _ in g["systems"]:
            packages += PEER_PACKAGES.get(system, [])
    return packages


def sizes(quick):
    """Problem sizes: BENCHMARKS.md's in full mode, small ones for the CI smoke test."""
    if quick:
        return dict(h1=100_000, h2=1_000_000, h3=10_000, h4=100_000, h5_seconds=1.0,
                    h5_warmup=0.2, h6=1_000_000, h7_tiny=100_000, h7_tiny_py=10_000,
                    h7_items=100, h7_items_py=40, h8=5_000, h8_calls=200,
                    h9=1_000, h9_rq=50, h9_calls=50, h9_calls_rq=10, h10=200, h10_mib=64,
                    h11_small=20_000, h11_large=2_000)
    return dict(h1=1_000_000, h2=10_000_000, h3=100_000, h4=1_000_000, h5_seconds=5.0,
                h5_warmup=0.5, h6=10_000_000, h7_tiny=1_000_000, h7_tiny_py=100_000,
                h7_items=1000, h7_items_py=200, h8=100_000, h8_calls=2000,
                h9=10_000, h9_rq=1_000, h9_calls=1000, h9_calls_rq=100, h10=2000, h10_mib=64,
                h11_small=200_000, h11_large=20_000)


def b(name, *args):
    """A C++ program in the build directory."""
    return ("bin", name, [str(a) for a in args])


def py(script, *args):
    """A Python peer run by the system python3."""
    return ("py", script, [str(a) for a in args])


def workloads(s):
    """Every row group: id, variant, the systems (corio first) and the bars.

    A bar is (metric, peer, op, threshold): corio's median divided by the peer's median
    compared with the threshold; peer None means corio's own median is compared."""
    h5 = ["--seconds", s["h5_seconds"], "--warmup", s["h5_warmup"]]
    rows = []
    for variant in ("one_at_a_time", "spawn_all"):
        rows.append(dict(id="H1", variant=variant, systems=[
            ("corio", b("h1_corio", "--variant", variant, "--n", s["h1"])),
            ("asio", b("h1_asio", "--variant", variant, "--n", s["h1"])),
            ("asyncio", py("h1_tasks.py", "--variant", variant, "--n", s["h1"]))],
            bars=[("tasks_per_s", "asio", ">=", 3.0), ("tasks_per_s", "asyncio", ">=", 50.0)]))
    # Eager start (create_eager_task) against the lazy corio row of the same workload;
    # the peers do the same work their usual way (the system python3 is 3.11, before
    # asyncio's eager_task_factory).
    rows.append(dict(id="H1", variant="eager_one_at_a_time", systems=[
        ("corio", b("h1_corio", "--variant", "eager_one_at_a_time", "--n", s["h1"])),
        ("corio_lazy", b("h1_corio", "--variant", "one_at_a_time", "--n", s["h1"])),
        ("asio", b("h1_asio", "--variant", "one_at_a_time", "--n", s["h1"])),
        ("asyncio", py("h1_tasks.py", "--variant", "one_at_a_time", "--n", s["h1"]))],
        bars=[("tasks_per_s", "corio_lazy", ">=", 1.0), ("tasks_per_s", "asio", ">=", 3.0)]))
    rows.append(dict(id="H2", variant="direct_await", systems=[
        ("corio", b("h2_corio", "--n", s["h2"])),
        ("asio", b("h2_asio", "--n", s["h2"]))],
        bars=[("ns_per_await", "asio", "<=", 1.0)]))
    rows.append(dict(id="H3", variant="sleeps_1_10ms", systems=[
        ("corio", b("h3_corio", "--n", s["h3"])),
        ("raw_uring", b("h3_raw_uring", "--n", s["h3"])),
        ("asio", b("h3_asio", "--n", s["h3"])),
        ("asyncio", py("h3_sleep.py", "--n", s["h3"]))],
        bars=[("wall_ms", "raw_uring", "<=", 2.0), ("peak_rss_mib", None, "<=", 24.0)]))
    for p, c in ((1, 1), (4, 4)):
        args = ["--producers", p, "--consumers", c, "--n", s["h4"]]
        rows.append(dict(id="H4", variant=f"{p}x{c}", systems=[
            ("corio", b("h4_corio", *args)),
            ("asio", b("h4_asio", *args)),
            ("asyncio", py("h4_queue.py", *args))],
            bars=[("msgs_per_s", "asio", ">=", 5.0), ("msgs_per_s", "asyncio", ">=", 30.0)]))
    # H5 variants: connections x message size (the load client's --conns and --size).
    # Quick mode keeps both (they are the point of each variant) and shortens the window.
    for variant, conns, size in (("echo_50conn_64B", 50, 64), ("echo_1000conn_64B", 1000, 64),
                                 ("echo_50conn_16KiB", 50, 16384)):
        rows.append(dict(id="H5", variant=variant, server=True,
                         client_args=h5 + ["--conns", conns, "--size", size], systems=[
                             ("corio", b("h5_corio_server")),
                             ("raw_uring", b("h5_raw_uring_server")),
                             ("raw_epoll", b("h5_epoll_server")),
                             ("asio", b("h5_asio_server")),
                             ("asyncio", py("h5_echo_server.py"))],
                         bars=[("req_per_s", "raw_uring", ">=", 1.0), ("req_per_s", "asio", ">=", 1.15),
                               ("req_per_s", "asyncio", ">=", 3.0)]))
    for batch in (1, 32):
        rows.append(dict(id="H6", variant=f"batch{batch}", systems=[
            ("corio", b("h6_corio", "--batch", batch, "--n", s["h6"])),
            ("raw_uring", b("h6_raw_uring", "--batch", batch, "--n", s["h6"]))],
            bars=[("ops_per_s", "raw_uring", ">=", 0.9)]))
    rows.append(dict(id="H7", variant="tiny_tasks", systems=[
        ("corio", b("h7_corio", "--variant", "tiny", "--n", s["h7_tiny"])),
        ("onetbb", b("h7_tbb", "--variant", "tiny", "--n", s["h7_tiny"])),
        ("condvar_pool", b("h7_condvar_pool", "--variant", "tiny", "--n", s["h7_tiny"])),
        ("mp_threadpool", py("h7_thread_pool.py", "--variant", "tiny", "--n", s["h7_tiny_py"]))],
        bars=[("tasks_per_s", "onetbb", ">=", 1.0)]))
    rows.append(dict(id="H7", variant="map_speedup", systems=[
        ("corio", b("h7_corio", "--variant", "map", "--items", s["h7_items"])),
        ("onetbb", b("h7_tbb", "--variant", "map", "--items", s["h7_items"])),
        ("condvar_pool", b("h7_condvar_pool", "--variant", "map", "--items", s["h7_items"])),
        ("mp_threadpool", py("h7_thread_pool.py", "--variant", "map", "--items", s["h7_items_py"]))],
        bars=[("speedup", None, ">=", round(0.95 * CORES, 3))]))
    for variant, bar in (("map_chunksize1", 30.0), ("map_default", 2.0)):
        rows.append(dict(id="H8", variant=variant, systems=[
            ("corio", b("h8_corio", "--variant", variant, "--n", s["h8"])),
            ("mp_pool", py("h8_process_pool.py", "--variant", variant, "--n", s["h8"]))],
            bars=[("items_per_s", "mp_pool", ">=", bar)]))
    rows.append(dict(id="H8", variant="round_trip", systems=[
        ("corio", b("h8_corio", "--variant", "round_trip", "--calls", s["h8_calls"])),
        ("mp_pool", py("h8_process_pool.py", "--variant", "round_trip", "--calls", s["h8_calls"]))],
        bars=[("rtt_median_us", "mp_pool", "<=", 0.25), ("rtt_p99_us", "mp_pool", "<=", 0.1)]))
    # H9: each program starts its own redis-server and 2 worker processes.
    rows.append(dict(id="H9", variant="tiny_jobs", systems=[
        ("corio", b("h9_redis_pool", "--system", "corio", "--variant", "tiny_jobs", "--n", s["h9"])),
        # RQ forks a work horse per job (~10-100 jobs/s here): fewer jobs, same metric.
        ("rq", py("h9_rq.py", "--variant", "tiny_jobs", "--n", s["h9_rq"])),
        ("process_pool", b("h9_redis_pool", "--system", "process_pool", "--variant", "tiny_jobs",
                           "--n", s["h9"]))],
        bars=[("jobs_per_s", "rq", ">=", 20.0)]))
    rows.append(dict(id="H9", variant="round_trip", systems=[
        ("corio", b("h9_redis_pool", "--system", "corio", "--variant", "round_trip",
                    "--calls", s["h9_calls"])),
        ("rq", py("h9_rq.py", "--variant", "round_trip", "--calls", s["h9_calls_rq"])),
        ("process_pool", b("h9_redis_pool", "--system", "process_pool", "--variant", "round_trip",
                           "--calls", s["h9_calls"]))],
        bars=[("rtt_median_us", None, "<=", 1000.0)]))
    spawn = ["--variant", "spawn_wait", "--n", s["h10"], "--parallel", 8]
    rows.append(dict(id="H10", variant="spawn_wait", systems=[
        ("corio", b("h10_corio", *spawn)),
        ("asyncio", py("h10_subprocess.py", *spawn)),
        ("raw_spawn", b("h10_raw_spawn", *spawn))],
        bars=[("spawns_per_s", "asyncio", ">=", 5.0), ("spawns_per_s", "raw_spawn", ">=", 0.9)]))
    pipe = ["--variant", "pipe", "--mib", s["h10_mib"], "--file", h10_file(s["h10_mib"])]
    rows.append(dict(id="H10", variant="pipe_64MiB", systems=[
        ("corio", b("h10_corio", *pipe)),
        ("asyncio", py("h10_subprocess.py", *pipe)),
        ("raw_spawn", b("h10_raw_spawn", *pipe))],
        bars=[("mb_per_s", "raw_spawn", ">=", 0.9)]))
    for kind, peer in (("pipe", "mp_pipe"), ("queue", "mp_queue")):
        for label, size in (("64B", 64), ("64KiB", 65536)):
            n = s["h11_small"] if size == 64 else s["h11_large"]
            args = ["--size", size, "--n", n]
            bars = [("msgs_per_s", "raw_socketpair", ">=", 0.8)]
            if size == 64:
                bars.insert(0, ("msgs_per_s", peer, ">=", 20.0))
            rows.append(dict(id="H11", variant=f"{kind}_{label}", systems=[
                ("corio", b("h11_corio", "--variant", kind, *args)),
                (peer, py("h11_ipc.py", "--variant", kind, *args)),
                ("raw_socketpair", b("h11_raw_socketpair", *args))],
                bars=bars))
    return rows


def h10_file(mib):
    """The file `cat` reads in H10's pipe rows (made once, in the page cache)."""
    path = os.path.join(HERE, "results", f"h10_{mib}MiB.bin")
    if not os.path.exists(path) or os.path.getsize(path) != mib << 20:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            block = bytes(range(256)) * 4096
            for _ in range(mib):
                f.write(block)
    return path


class Runner:
    def __init__(self, args):
        self.bindir = os.path.join(os.path.abspath(args.build_dir), "benchmarks")
        self.python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        self.timeout = 120 if args.quick else 600
        self.notes = []
        self.setarch = self._probe_setarch()
        self.taskset = ["taskset", "-c", "0"] if shutil.which("taskset") else []
        if not self.taskset:
            self.notes.append("taskset not found: H5 server and client are NOT pinned")

    def _probe_setarch(self):
        for prefix in (["setarch", platform.machine(), "-R"], ["setarch", "-R"]):
            try:
                if subprocess.run(prefix + ["true"], capture_output=True).returncode == 0:
                    return prefix
            except OSError:
                pass
        self.notes.append("setarch -R is not usable here: programs run WITH address randomization")
        return []

    def command(self, program):
        kind, name, args = program
        if kind == "bin":
            path = os.path.join(self.bindir, name)
            return self.setarch + [path] + args, path
        path = os.path.join(PYDIR, name)
        return self.setarch + [self.python, path] + args, path

    def available(self, program):
        return os.path.exists(self.command(program)[1])

    def run_program(self, program):
        """Runs one program; returns ({metric: value}, error or None)."""
        cmd, _ = self.command(program)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return {}, f"timed out after {self.timeout} s"
        values = parse_results(p.stdout)
        if p.returncode != 0 or not values:
            return {}, f"exit {p.returncode}: {tail(p.stderr or p.stdout)}"
        return values, None

    def run_server(self, program, client_args):
        """Starts an echo server pinned to CPU 0, drives it with the load client (also
        pinned to CPU 0), stops it; returns ({metric: value}, error or None)."""
        client = b("h5_load_client")
        if not self.available(client):
            return {}, "h5_load_client not built"
        cmd, _ = self.command(program)
        server = subprocess.Popen(self.taskset + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            line = read_line_with_timeout(server, 20.0)
            m = re.match(r"PORT (\d+)", line or "")
            if not m:
                return {}, f"server did not print its port (got {line!r})"
            ccmd, _ = self.command(client)
            ccmd = self.taskset + ccmd + ["--port", m.group(1), "--server-pid", str(server.pid)] + \
                [str(a) for a in client_args]
            try:
                p = subprocess.run(ccmd, capture_output=True, text=True, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                return {}, "load client timed out"
            values = parse_results(p.stdout)
            if p.returncode != 0 or not values:
                return {}, f"client exit {p.returncode}: {tail(p.stderr or p.stdout)}"
            if server.poll() is not None:
                return {}, f"server exited early ({server.returncode})"
            return values, None
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


def read_line_with_timeout(proc, seconds):
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sel.select(timeout=deadline - time.monotonic()):
            return proc.stdout.readline()
        if proc.poll() is not None:
            return None
    return None


def parse_results(text):
    values = {}
    for line in text.splitlines():
        m = RESULT_RE.match(line.strip())
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


def tail(text, n=300):
    text = " ".join(text.strip().split())
    return text[-n:] if text else "(no output)"


def fmt(x):
    if x is None:
        return "-"
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:.3g}M"
    if ax >= 1e4:
        return f"{x / 1e3:.3g}k"
    if ax >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def compare(value, op, threshold):
    return value >= threshold if op == ">=" else value <= threshold


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def machine_description():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.machine()}, {CORES} cores, {model or 'unknown CPU'}, Linux {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 round (CI smoke test)")
    ap.add_argument("--rounds", type=int, help="rounds (default 5, quick 1)")
    ap.add_argument("--only", help="comma-separated ids, e.g. H1,H6")
    ap.add_argument("--build", action="store_true", help="configure (preset bench) and build first")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "latest.json"))
    ap.add_argument("--chart", help="also draw the ratios as a chart (.png or .svg; python3-matplotlib)")
    ap.add_argument("--chart-from", metavar="JSON", help="draw --chart from a results file, run nothing")
    ap.add_argument("--allow-missing", action="store_true",
                    help="a program that is not built is skipped with a note instead of failing the run")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 5)
    only = {x.strip().upper() for x in args.only.split(",")} if args.only else None
    groups = [g for g in workloads(sizes(args.quick)) if only is None or g["id"] in only]

    if args.chart_from and not args.chart:
        ap.error("--chart-from needs --chart FILE")
    if args.chart:
        if args.build:
            ensure_packages(CHART_PACKAGES, "--chart")
        check_chart_support(args.chart)  # before a long run, not after it
    if args.chart_from:
        with open(args.chart_from) as f:
            draw_chart(json.load(f), args.chart, args.chart_from)
        return 0

    build_note = None
    if args.build:
        ensure_packages(peer_packages(groups), "the benchmark peers")
        # Configure every time: a package installed since the last run must be found.
        configure = ["cmake", "-S", ROOT, "-B", args.build_dir]
        if not os.path.exists(os.path.join(args.build_dir, "CMakeCache.txt")):
            configure += ["-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG",
                          "-DCORIO_BUILD_BENCHMARKS=ON", "-DCORIO_BUILD_TESTS=OFF",
                          "-DCORIO_BUILD_EXAMPLES=OFF"]
        subprocess.run(configure, check=True)
        # Keep going past a target that fails to build: the rest still runs.
        with open(os.path.join(args.build_dir, "CMakeCache.txt")) as f:
            keep_going = ["-k", "0"] if "CMAKE_GENERATOR:INTERNAL=Ninja" in f.read() else ["-k"]
        built = subprocess.run(["cmake", "--build", args.build_dir, "-j", str(CORES), "--"] + keep_going)
        if built.returncode != 0:
            build_note = "the build failed for some targets (see above); those programs are skipped"

    runner = Runner(args)
    load_before = load_average()
    if build_note:
        runner.notes.append(build_note)
    started = time.monotonic()
    print(f"# corio benchmarks ({'quick' if args.quick else 'full'}, {rounds} round(s)); "
          f"{machine_description()}", flush=True)
    if runner.setarch:
        print(f"# running under: {' '.join(runner.setarch)}", flush=True)

    # samples[(id, variant, metric, system)] = [values...]
    samples = {}
    failures = {}
    not_built = []
    for g in groups:
        present = []
        for system, program in g["systems"]:
            if runner.available(program):
                present.append((system, program))
            else:
                not_built.append(f"{g['id']} {g['variant']}: {system} MISSING ({program[1]} not built; "
                                 + how_to_get(g["id"], system) + ")")
                print(f"  {not_built[-1]}", flush=True)
        for r in range(rounds):
            for system, program in present:
                if (g["id"], g["variant"], system) in failures:
                    continue
                t0 = time.monotonic()
                if g.get("server"):
                    values, err = runner.run_server(program, g["client_args"])
                else:
                    values, err = runner.run_program(program)
                if err:
                    failures[(g["id"], g["variant"], system)] = err
                    runner.notes.append(f"{g['id']} {g['variant']}: {system} FAILED: {err}")
                    print(f"  {g['id']} {g['variant']} round {r + 1} {system}: FAILED: {err}", flush=True)
                    continue
                for metric, value in values.items():
                    samples.setdefault((g["id"], g["variant"], metric, system), []).append(value)
                shown = ", ".join(f"{m}={fmt(v)}" for m, v in values.items())
                print(f"  {g['id']} {g['variant']} round {r + 1} {system}: {shown} "
                      f"({time.monotonic() - t0:.1f} s)", flush=True)

    rows = []
    for (gid, variant, metric, system), vals in samples.items():
        rows.append({"id": gid, "variant": variant, "metric": metric,
                     "better": BETTER.get(metric, "higher"), "system": system,
                     "median": statistics.median(vals), "min": min(vals), "max": max(vals),
                     "rounds": len(vals)})
    index = {(r["id"], r["variant"], r["metric"], r["system"]): r for r in rows}

    out = []
    out.append("| id | variant | metric | system | median | min-max | rounds | corio / system |")
    out.append("|---|---|---|---|---|---|---|---|")
    for g in groups:
        metrics = []
        for (gid, variant, metric, _system) in index:
            if gid == g["id"] and variant == g["variant"] and metric not in metrics:
                metrics.append(metric)
        for metric in metrics:
            better = BETTER.get(metric, "higher")
            peers = [index[(g["id"], g["variant"], metric, s)] for s, _ in g["systems"]
                     if s != "corio" and (g["id"], g["variant"], metric, s) in index]
            strongest = None
            if peers:
                strongest = (max if better == "higher" else min)(peers, key=lambda r: r["median"])
            corio = index.get((g["id"], g["variant"], metric, "corio"))
            for system, _ in g["systems"]:
                r = index.get((g["id"], g["variant"], metric, system))
                if r is None:
                    continue
                ratio = ""
                if corio and system != "corio" and r["median"]:
                    ratio = f"{corio['median'] / r['median']:.3g}x"
                    if r is strongest:
                        ratio += " (strongest peer)"
                arrow = "↑" if better == "higher" else "↓"
                out.append(f"| {g['id']} | {g['variant']} | {metric} {arrow} | {system} | {fmt(r['median'])} | "
                           f"{fmt(r['min'])}-{fmt(r['max'])} | {r['rounds']} | {ratio} |")
    out.append("")
    out.append("| id | variant | bar | corio | vs | ratio | met |")
    out.append("|---|---|---|---|---|---|---|")
    bars_met = bars_missed = bars_unknown = 0
    for g in groups:
        for metric, peer, op, threshold in g["bars"]:
            corio = index.get((g["id"], g["variant"], metric, "corio"))
            text = f"{metric} {op} {threshold:g}" + (f"x {peer}" if peer else "")
            if peer is None:
                if corio is None:
                    verdict, shown, vs = "n/a (no corio figure)", "-", "-"
                    bars_unknown += 1
                else:
                    ok = compare(corio["median"], op, threshold)
                    verdict, shown, vs = ("yes" if ok else "**NO**"), fmt(corio["median"]), "(absolute)"
                    bars_met += ok
                    bars_missed += not ok
                out.append(f"| {g['id']} | {g['variant']} | {text} | {shown} | {vs} | - | {verdict} |")
                continue
            other = index.get((g["id"], g["variant"], metric, peer))
            if corio is None or other is None or not other["median"]:
                missing = "corio" if corio is None else peer
                out.append(f"| {g['id']} | {g['variant']} | {text} | {fmt(corio and corio['median'])} | "
                           f"{fmt(other and other['median'])} | - | n/a (no {missing} figure) |")
                bars_unknown += 1
                continue
            ratio = corio["median"] / other["median"]
            ok = compare(ratio, op, threshold)
            bars_met += ok
            bars_missed += not ok
            out.append(f"| {g['id']} | {g['variant']} | {text} | {fmt(corio['median'])} | "
                       f"{fmt(other['median'])} | {ratio:.3g}x | {'yes' if ok else '**NO**'} |")
    out.append("")
    out.append(f"Bars: {bars_met} met, {bars_missed} missed, {bars_unknown} not measurable. "
               f"Ratios are corio's median over the peer's, in the metric's own unit "
               f"(↑ higher is better, ↓ lower is better).")
    load_after = load_average()
    if load_before is not None and load_after is not None:
        busy = max(load_before, load_after) > 0.5 * CORES
        out.append(f"- load average (1 min) {load_before:.2f} before, {load_after:.2f} after, on {CORES} CPUs"
                   + (": the machine was busy with other work, expect wide min-max spreads" if busy else ""))
    for note in runner.notes + not_built:
        out.append(f"- {note}")
    table = "\n".join(out)
    print()
    print(table)
    print(f"\n(total {time.monotonic() - started:.0f} s)")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    doc = {"machine": machine_description(),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "rows": rows}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(f"# corio benchmarks, {doc['date']}, {doc['machine']}\n\n{table}\n")
    if args.chart:
        draw_chart(doc, args.chart, args.out)
    # Exit status: a failed or missing program fails the run (CI); a missed bar does not.
    if not_built and not args.allow_missing:
        print(f"error: {len(not_built)} program(s) not built (see MISSING above); "
              "`python3 benchmarks/run.py --build` installs the peers and builds them", file=sys.stderr)
        return 1
    return 1 if failures else 0


def how_to_get(gid, system):
    packages = ROW_PACKAGES.get(gid, []) + PEER_PACKAGES.get(system, [])
    if packages:
        return f"needs {' '.join(packages)}: run with --build, or apt-get install -y {' '.join(packages)}"
    return "run with --build"


def check_chart_support(path):
    """Which interpreter draws the chart: None for this one, or Debian's python3 when
    this one (a virtualenv, pyenv) lacks matplotlib. Stops with the exact command when
    neither can."""
    if os.path.splitext(path)[1].lower() not in (".png", ".svg"):
        sys.exit(f"error: --chart {path}: the file name must end in .png or .svg")
    try:
        import matplotlib  # noqa: F401
        return None
    except ImportError:
        pass
    system = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system) and \
            subprocess.run([system, "-c", "import matplotlib"], capture_output=True).returncode == 0:
        return system
    sys.exit("error: --chart needs matplotlib; run\n    sudo apt-get install -y python3-matplotlib\n"
             "(or pass --build, which installs it)")


def chart_bars(doc):
    """(label, advantage, system) per peer figure: how many times better corio is, in
    the direction of the metric (above 1: corio better), from a results document."""
    rows = doc["rows"]
    corio = {(r["id"], r["variant"], r["metric"]): r for r in rows if r["system"] == "corio"}
    bars = []
    for r in rows:
        c = corio.get((r["id"], r["variant"], r["metric"]))
        if r["system"] == "corio" or c is None or not r["median"] or not c["median"]:
            continue
        ratio = c["median"] / r["median"]
        advantage = ratio if r.get("better", "higher") == "higher" else 1 / ratio
        bars.append((f"{r['id']} {r['variant']} {r['metric']} vs {r['system']}", advantage, r["system"]))
    return bars


def draw_chart(doc, path, doc_file=None):
    """Draws corio's advantage over each peer (log scale, 1 = parity) into path."""
    other = check_chart_support(path)
    if other:
        if doc_file is None:
            sys.exit("error: --chart: matplotlib is only available to " + other)
        subprocess.run([other, os.path.abspath(__file__), "--chart", path, "--chart-from", doc_file],
                       check=True)
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    bars = chart_bars(doc)
    if not bars:
        sys.exit("error: --chart: no row has both a corio figure and a peer figure")
    systems = sorted({s for _, _, s in bars})
    colors = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(systems)}
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(bars) + 1.6))
    y = list(range(len(bars)))[::-1]
    ax.barh(y, [a for _, a, _ in bars], color=[colors[s] for _, _, s in bars], height=0.7)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([label for label, _, _ in bars], fontsize=7)
    for yi, (_, a, _) in zip(y, bars):
        ax.text(a, yi, f" {a:.3g}x", va="center", fontsize=6)
    ax.set_xlabel("corio's advantage over the peer (log scale; above 1: corio better)", fontsize=8)
    ax.set_title(f"corio benchmarks, {doc.get('date', '')}\n{doc.get('machine', '')}", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
    print(f"# chart written to {path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
