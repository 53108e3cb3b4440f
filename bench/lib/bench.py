#!/usr/bin/env python3
"""Helpers for bench/run (standard library only): free ports, readiness, start-up timing, seeding resources,
recording wrk figures and writing the report (Markdown, JSON and the gnuplot SVG).

bench/run owns the processes; this file only measures and formats. Each subcommand is small and prints its
answer on stdout; `bench.py -h` lists them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

MIB = 1024 * 1024

# --------------------------------------------------------------------------------------------------------------
# Scenarios and targets. The key is what bench/run passes to `record`; order here is the order of the table.
# A target is (kind, value): "ratio" means requests/s / baseline >= value, "rps" means requests/s >= value.
# --------------------------------------------------------------------------------------------------------------
SCENARIOS: dict[str, dict] = {
    "healthz": {"label": "`GET /healthz/`", "target": ("ratio", 0.85)},
    "greeting-v1": {"label": "`GET /api/greeting/v1/`", "target": ("ratio", 0.85)},
    "greeting-v1-nolog": {"label": "`GET /api/greeting/v1/`, access_log=false", "target": None},
    "greeting-v2": {"label": "`GET /api/greeting/v2/?name=x`", "target": None},
    "greeting-v3": {"label": "`GET /api/greeting/v3/` with a JWT", "target": ("ratio", 0.70)},
    "greeting-v1-nometrics": {"label": "`GET /api/greeting/v1/`, metrics_enabled=false", "target": None},
    "greeting-v3-nometrics": {"label": "`GET /api/greeting/v3/` with a JWT, metrics_enabled=false", "target": None},
    # The reads' targets are ratios to their database ceiling (bench-reads, "ceiling"), not to bench-limit: a
    # database read can never come near a server that does no database work.
    "resource-get-sqlite": {"label": "`GET /api/resource/v1/{id}` (SQLite)", "target": None,
                            "ceiling": 0.70, "ceiling_label": "bench-reads SQLite `GET {id}`"},
    "resource-list-sqlite": {"label": "`GET /api/resource/v1/?limit=100` (SQLite)", "target": None,
                             "ceiling": 0.50, "ceiling_label": "bench-reads SQLite `?limit=100`"},
    "resource-post-sqlite": {"label": "`POST /api/resource/v1/` (SQLite)", "target": ("rps", 2000)},
    "resource-get-postgres": {"label": "`GET /api/resource/v1/{id}` (PostgreSQL)", "target": None,
                              "ceiling": 0.70, "ceiling_label": "bench-reads PostgreSQL `GET {id}`"},
    "resource-list-postgres": {"label": "`GET /api/resource/v1/?limit=100` (PostgreSQL)", "target": None,
                               "ceiling": 0.50, "ceiling_label": "bench-reads PostgreSQL `?limit=100`"},
    # The same read with the server's connections over TLS (the URL's default sslmode=prefer), against the
    # ceiling's plain connections: what encryption on loopback costs. No target.
    "resource-get-postgres-tls": {"label": "`GET /api/resource/v1/{id}` (PostgreSQL over TLS)", "target": None,
                                  "ceiling": None,
                                  "ceiling_label": "bench-reads PostgreSQL `GET {id}` (beside the TLS line)"},
    "resource-post-postgres": {"label": "`POST /api/resource/v1/` (PostgreSQL)", "target": None},
    # The same create with an Idempotency-Key (a fresh one each): what storing the key and its answer in the
    # create's transaction costs. Judged against the plain create in `keys_section`.
    "resource-post-key-sqlite": {"label": "`POST /api/resource/v1/` with an Idempotency-Key (SQLite)", "target": None},
    "resource-post-key-postgres": {"label": "`POST /api/resource/v1/` with an Idempotency-Key (PostgreSQL)",
                                   "target": None},
}

# A create with an Idempotency-Key may take at most 25% longer than one without (the write-safety issue's budget):
# its requests/s at least 1 / 1.25 of the plain create's.
KEY_COST_LIMIT = 1 / 1.25

# Reads under concurrent writers (`tail` records): bench/run's keys, in the order of the table.
TAIL_ENGINES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
TAIL_READERS = {"server": "rust-api-axum", "ceiling": "bench-reads (ceiling)"}

# Metrics may cost at most this share of a scenario's requests/s (the operations issue's budget).
METRICS_COST_LIMIT = 0.05

# Connection spikes (the memory issue's targets): each open connection may cost at most this many times what it
# costs the baseline, and this long after they all closed RSS must be back within this factor of idle RSS.
SPIKE_PER_CONNECTION_LIMIT = 1.3
SPIKE_SETTLED_AFTER = "30"
SPIKE_SETTLED_LIMIT = 2.0

RESOURCE_TARGETS = {
    "idle_rss": 15 * MIB,
    "peak_rss": 64 * MIB,
    "startup_s": 0.100,
}


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (free now; bench/run uses it at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(port: int, path: str = "/healthz/", timeout: float = 1.0) -> int | None:
    """Status code of one GET on a fresh connection, or None when nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    parts = data.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def cmd_free_port(_args) -> int:
    print(free_port())
    return 0


def cmd_wait_200(args) -> int:
    """Waits until GET /healthz/ answers 200; fails early when the process died."""
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if probe(args.port, args.path) == 200:
            return 0
        if args.pid and not alive(args.pid):
            print(f"process {args.pid} exited before answering 200 on port {args.port}", file=sys.stderr)
            return 1
        time.sleep(0.02)
    print(f"nothing answered 200 on port {args.port}{args.path} within {args.timeout}s", file=sys.stderr)
    return 1


def cmd_startup(args) -> int:
    """Spawns the command `count` times and measures spawn -> first 200 from /healthz/ with a tight poll loop.

    The command is given after `--`; `{port}` in it is replaced by a fresh free port each time. The server is
    stopped with SIGTERM after each start. Prints JSON: every time in seconds, and their median.
    """
    times = []
    with open(args.log, "ab") as log:
        for _ in range(args.count):
            port = free_port()
            command = [part.replace("{port}", str(port)) for part in args.argv]
            start = time.perf_counter()
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            try:
                while True:
                    # connect() to a port nobody listens on fails in microseconds; poll without sleeping so the
                    # measurement's resolution is the loop's, not a sleep's.
                    if probe(port) == 200:
                        times.append(time.perf_counter() - start)
                        break
                    if process.poll() is not None:
                        print(f"server exited with {process.returncode} before answering 200", file=sys.stderr)
                        return 1
                    if time.perf_counter() - start > 30:
                        print("server did not answer 200 within 30 s", file=sys.stderr)
                        return 1
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
            time.sleep(0.2)
    print(json.dumps({"times_s": times, "median_s": statistics.median(times)}))
    return 0


def cmd_seed(args) -> int:
    """Creates `count` resources over one keep-alive connection; prints the first id, or `status NNN` when the
    endpoint refuses the first one (404 while the resource API is not mounted)."""
    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    first = None
    for i in range(args.count):
        body = json.dumps({"name": f"{args.prefix}-{i}"})
        connection.request("POST", "/api/resource/v1/", body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 201:
            if first is None:
                print(f"status {response.status}")
                return 0
            print(f"seeding stopped at {i}: status {response.status} {payload[:200]!r}", file=sys.stderr)
            return 1
        if first is None:
            try:
                first = json.loads(payload)["id"]
            except (ValueError, KeyError, TypeError):
                location = response.getheader("Location", "")
                first = location.rstrip("/").rsplit("/", 1)[-1]
    print(first)
    return 0


def cmd_drive(args) -> int:
    """Sends `count` requests one after another on one keep-alive connection (for profiles: a fixed amount of
    work, not a fixed time); fails on the first unexpected status."""
    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
    headers = {}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    for i in range(args.count):
        if args.post:
            headers["Content-Type"] = "application/json"
            body = json.dumps({"name": f"{args.prefix}-{i}"})
            connection.request("POST", args.path, body=body, headers=headers)
        else:
            connection.request("GET", args.path, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status >= 400:
            print(f"request {i}: status {response.status} {payload[:200]!r}", file=sys.stderr)
            return 1
    return 0


# Frames every request passes through that say nothing about our layers: threads, the runtime's scheduler.
PLUMBING = re.compile(
    r"^(clone|start_thread|<std::sys::thread::unix::Thread>::new::thread_start|"
    r"core::ops::function::FnOnce::call_once\{\{vtable\.shim\}\}|std::sys::backtrace::__rust_begin_short_backtrace|"
    r"tokio::runtime::(task|scheduler|context|blocking)::.*|<tokio::runtime::blocking::task::BlockingTask<T>.*|"
    r"std::thread::local::LocalKey<T>::with)$"
)
ANNOTATE_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(.*?)\s*$")


def cmd_per_request(args) -> int:
    """Turns `callgrind_annotate --inclusive=yes` output (stdin) into instructions per request for the
    heaviest functions, leaving out thread and scheduler frames."""
    total = None
    rows = []
    for line in sys.stdin:
        match = ANNOTATE_LINE.match(line)
        if not match:
            continue
        count, rest = int(match.group(1).replace(",", "")), match.group(2)
        if rest == "PROGRAM TOTALS":
            total = count
            continue
        rest = re.sub(r"\s+\[[^\]]*\]$", "", rest)  # the object file
        head, sep, tail = rest.partition(":")
        name = tail if sep and not tail.startswith(":") else rest  # "file:function", but not "a::b"
        name = re.sub(r"'\d+$", "", name)  # callgrind's recursion marks
        if PLUMBING.match(name):
            continue
        rows.append((count, name))
    if total is None:
        print("no PROGRAM TOTALS in the input", file=sys.stderr)
        return 1
    print(f"{total / args.requests:,.0f} instructions per request ({total:,} for {args.requests} requests)")
    print()
    print(f"{'Ir/request':>10}  {'share':>5}  function (inclusive: with everything it calls)")
    seen = set()
    shown = 0
    for count, name in rows:
        if name in seen:
            continue
        seen.add(name)
        short = name if len(name) <= args.width else name[: args.width - 1] + "…"
        print(f"{count / args.requests:>10,.0f}  {100 * count / total:4.1f}%  {short}")
        shown += 1
        if shown >= args.top:
            break
    return 0


def status_kib(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of a process, in KiB, from /proc/PID/status."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            figures[key] = int(rest.split()[0])
    return figures


def answered(sock: socket.socket) -> bool:
    """Reads one whole HTTP/1.1 answer (head and Content-Length body); False when the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        body += chunk
    return True


def cmd_spike(args) -> int:
    """A connection spike against one process: RSS idle, then COUNT keep-alive connections that each send one
    GET PATH and read its answer and stay open, RSS with them all open, then all closed and RSS after each of
    --after seconds. Prints JSON (KiB). Connections open in batches, so the listen backlog never overflows
    (an overflow would cost SYN retries, not memory)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.count + 64:
        if hard < args.count + 64:
            print(f"spike: {args.count} connections need a file-descriptor limit above {hard}", file=sys.stderr)
            return 1
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    request = f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n\r\n".encode()
    time.sleep(args.settle)
    idle = status_kib(args.pid)
    sockets: list[socket.socket] = []
    failed = 0
    for start in range(0, args.count, args.batch):
        batch = []
        for _ in range(min(args.batch, args.count - start)):
            try:
                sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
                sock.sendall(request)
                batch.append(sock)
            except OSError:
                failed += 1
        for sock in batch:
            try:
                if answered(sock):
                    sockets.append(sock)
                    continue
            except OSError:
                pass
            failed += 1
            sock.close()
    time.sleep(args.settle)
    held = status_kib(args.pid)
    for sock in sockets:
        sock.close()
    after = {}
    waited = 0.0
    for seconds in args.after:
        time.sleep(seconds - waited)
        waited = seconds
        after[f"{seconds:g}"] = status_kib(args.pid)
    print(json.dumps({"role": args.role, "count": args.count, "open": len(sockets), "failed": failed, "idle": idle, "held": held,
                      "after": after}))
    return 0 if failed == 0 else 1


def wrk_figures(output: str) -> dict | None:
    """The figures lib/report.lua prints after a wrk run (its last `BENCH_JSON` line), or None when wrk failed."""
    figures = None
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            figures = json.loads(line[len("BENCH_JSON ") :])
    return figures


def cmd_record(args) -> int:
    """Reads wrk's output on stdin and prints one JSON record with the run's figures and our labels."""
    output = sys.stdin.read()
    figures = wrk_figures(output)
    record = {"chain": args.chain, "role": args.role, "key": args.key, "conns": args.conns, "seq": args.seq}
    for item in args.set:
        name, _, value = item.partition("=")
        record[name] = int(value) if value.isdigit() else value
    if figures is None:
        record["failed"] = output.strip()[-500:] or "wrk printed nothing"
    else:
        duration = figures["duration_us"] / 1e6
        errors = sum(figures[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "status_errors"))
        # Requests that ended in an error still count in wrk's total; requests/s counts only good answers, so an
        # endpoint answering 500 fast does not look fast.
        good = max(figures["requests"] - figures["status_errors"], 0)
        record.update(figures, errors=errors, rps=good / duration if duration else 0.0)
    print(json.dumps(record))
    # The log line names what ran: a ceiling run shares its scenario's key, a read under writers its alone twin's.
    shown = args.key + (" (ceiling)" if args.role == "ceiling" else "")
    if record.get("part") == "reads" and record.get("writers"):
        shown += f" (with {record['writers']} writers)"
    if "rps" in record:
        print(
            f"    {shown} @{args.conns}: {record['rps']:,.0f} requests/s, p50 {fmt_us(record['p50_us'])}, "
            f"p99 {fmt_us(record['p99_us'])}, {errors} errors",
            file=sys.stderr,
        )
    else:
        print(f"    {shown} @{args.conns}: wrk failed: {record['failed'][-200:]}", file=sys.stderr)
    return 0


def machine() -> dict:
    """Date and machine facts for the report's header."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = " ".join(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    os_name = "Linux"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": memory_kib / 1024 / 1024,
        "os": f"{os_name}, kernel {os.uname().release}",
    }


def cmd_meta(args) -> int:
    """Machine facts plus the run's own figures: --set k=string, --num k=number|null, --file k=JSON file."""
    meta = machine()
    for item in args.set:
        key, _, value = item.partition("=")
        meta[key] = value
    for item in args.num:
        key, _, value = item.partition("=")
        meta[key] = None if value in ("", "null") else float(value) if "." in value else int(value)
    for item in args.file:
        key, _, path = item.partition("=")
        meta[key] = json.loads(Path(path).read_text()) if Path(path).is_file() else None
    print(json.dumps(meta, indent=1))
    return 0


# --------------------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------------------


def fmt_rps(value: float) -> str:
    return f"{value:,.0f}"


def fmt_us(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} ms"
    return f"{value:.0f} µs"


def fmt_mib(value_bytes: float) -> str:
    return f"{value_bytes / MIB:.1f} MiB"


def around(chain: list[dict], i: int, wanted) -> list[float]:
    """requests/s of the nearest run before and the nearest after chain[i] that `wanted` accepts."""
    before = next((b for b in reversed(chain[:i]) if wanted(b) and "rps" in b), None)
    after = next((b for b in chain[i + 1 :] if wanted(b) and "rps" in b), None)
    return [b["rps"] for b in (before, after) if b is not None]


def paired(records: list[dict]) -> list[dict]:
    """Each scenario and ceiling measurement with its baseline: the mean of the baseline runs just before and just
    after it in the same chain (same connections). Ratio = requests/s / that mean. A scenario run also gets the
    mean of its own ceiling runs (role `ceiling`, same key) just before and after it: ceiling_ratio."""
    rows = []
    chains: dict[str, list[dict]] = {}
    for r in records:
        if r["role"] in ("baseline", "scenario", "ceiling"):
            chains.setdefault(r["chain"], []).append(r)
    for chain in chains.values():
        chain.sort(key=lambda r: r["seq"])
        for i, r in enumerate(chain):
            if r["role"] == "baseline":
                continue
            base = around(chain, i, lambda b: b["role"] == "baseline")
            baseline = statistics.mean(base) if base else None
            row = dict(r)
            row["baseline_rps"] = baseline
            row["baseline_each"] = base
            row["ratio"] = (r["rps"] / baseline) if ("rps" in r and baseline) else None
            if r["role"] == "scenario":
                ceil = around(chain, i, lambda b, key=r["key"]: b["role"] == "ceiling" and b["key"] == key)
                if ceil:
                    row["ceiling_rps"] = statistics.mean(ceil)
                    row["ceiling_each"] = ceil
                    row["ceiling_ratio"] = r["rps"] / row["ceiling_rps"] if "rps" in r and row["ceiling_rps"] else None
            rows.append(row)
    return rows


def aggregate(runs: list[dict]) -> list[dict]:
    """One row per (scenario, connections): medians over the rounds of requests/s, ratio, p50, p99 and the
    baseline; errors summed; the ratios' range kept to show the spread."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["role"], run["key"], run["conns"]), []).append(run)
    rows = []
    for (role, key, conns), group in groups.items():
        good = [r for r in group if "rps" in r]
        row = {"key": key, "conns": conns, "role": role, "rounds": len(group), "runs": group}
        if good:
            ratios = [r["ratio"] for r in good if r["ratio"] is not None]
            bases = [r["baseline_rps"] for r in good if r["baseline_rps"]]
            row.update(
                rps=statistics.median(r["rps"] for r in good),
                p50_us=statistics.median(r["p50_us"] for r in good),
                p99_us=statistics.median(r["p99_us"] for r in good),
                errors=sum(r["errors"] for r in good),
                ratio=statistics.median(ratios) if ratios else None,
                ratio_min=min(ratios) if ratios else None,
                ratio_max=max(ratios) if ratios else None,
                baseline_rps=statistics.median(bases) if bases else None,
                failed_runs=len(group) - len(good),
            )
            ceiling_ratios = [r["ceiling_ratio"] for r in good if r.get("ceiling_ratio") is not None]
            if ceiling_ratios:
                row.update(
                    ceiling_ratio=statistics.median(ceiling_ratios),
                    ceiling_ratio_min=min(ceiling_ratios),
                    ceiling_ratio_max=max(ceiling_ratios),
                    ceiling_rps=statistics.median(r["ceiling_rps"] for r in good if r.get("ceiling_ratio") is not None),
                )
        rows.append(row)
    return rows


def fmt_range(row: dict, name: str) -> str:
    """A ratio as a percentage, with its range over the rounds in brackets when there was more than one."""
    value = row.get(name)
    if value is None:
        return "—"
    text = f"{value:.0%}"
    if row.get(f"{name}_min") is not None and row[f"{name}_min"] != row[f"{name}_max"]:
        text += f" ({row[f'{name}_min']:.0%}–{row[f'{name}_max']:.0%})"
    return text


# Scenarios also reported as a share of greeting v1's requests/s at the same connections, with the floor the
# database issue sets (None: for information).
VS_GREETING_V1 = {
    "greeting-v3": None,
    "resource-get-sqlite": None,
    "resource-get-postgres": None,
}


def judge(target, row) -> tuple[str, str]:
    """(target text, 'met'/'missed'/'') for one row."""
    if target is None:
        return "—", ""
    kind, value = target
    if kind == "ratio":
        text = f"≥ {value:.0%} of baseline"
        ok = row.get("ratio") is not None and row["ratio"] >= value
    else:
        text = f"≥ {value:,.0f}/s"
        ok = row.get("rps", 0) >= value
    if "rps" not in row or row.get("failed_runs"):
        return text, "missed (run failed)"
    if row.get("errors"):
        return text, "missed (errors)"
    return text, "met" if ok else "missed"


def write_plot(rows: list[dict], baselines: list[dict], meta: dict, out: Path, work: Path) -> str | None:
    """requests/s against connections for greeting v1, v3 and the baseline; returns a note when skipped."""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        return "plot skipped: gnuplot is not installed"
    conns = sorted({r["conns"] for r in rows if r["key"] in ("greeting-v1", "greeting-v3")})
    if len(conns) < 2:
        return "plot skipped: fewer than two connection counts were measured"

    def value(key, c):
        found = [r["rps"] for r in rows if r["key"] == key and r["conns"] == c and "rps" in r]
        return f"{statistics.mean(found):.1f}" if found else "NaN"

    def base(c):
        found = [b["rps"] for b in baselines if b["conns"] == c and "rps" in b]
        return f"{statistics.mean(found):.1f}" if found else "NaN"

    data = work / "sweep.dat"
    with data.open("w") as f:
        f.write("# connections baseline greeting-v1 greeting-v3\n")
        for c in conns:
            f.write(f"{c} {base(c)} {value('greeting-v1', c)} {value('greeting-v3', c)}\n")
    title = f"rust-api-axum vs raw hyper — {meta['date']}, {meta['cores']} cores, {meta['memory_gib']:.0f} GiB"
    script = work / "sweep.gp"
    script.write_text(
        f"""set terminal svg size 760,440 font "sans,12" background rgb "white"
set output "{out}"
set title "{title}"
set xlabel "connections"
set ylabel "requests/s"
set logscale x 2
set xrange [{conns[0] / 1.5}:{conns[-1] * 1.5}]
set xtics ({", ".join(str(c) for c in conns)})
set format y "%.0s%c"
set yrange [0:*]
set grid
set key bottom center
plot "{data}" using 1:2 with linespoints lw 2 pt 7 title "baseline (bench-limit, raw hyper)", \\
     "" using 1:3 with linespoints lw 2 pt 5 title "GET /api/greeting/v1/", \\
     "" using 1:4 with linespoints lw 2 pt 9 title "GET /api/greeting/v3/ (JWT)"
"""
    )
    result = subprocess.run([gnuplot, str(script)], capture_output=True, text=True)
    if result.returncode != 0:
        return f"plot skipped: gnuplot failed: {result.stderr.strip()[:300]}"
    # gnuplot stamps nothing variable into the SVG, so the file diffs only when the figures change.
    return None


def ceiling_section(rows: list[dict], ceilings: dict, order: list[str], w, verdicts: list) -> None:
    """"Against the database driver's ceiling": each read against bench-reads, and bench-reads against
    bench-limit."""
    measured = [r for r in rows if "ceiling" in SCENARIOS.get(r["key"], {}) and r.get("ceiling_ratio") is not None]
    if not measured:
        return
    w("## Against the database driver's ceiling")
    w("")
    w("`bench-reads` is raw hyper serving the same two read routes with the same bytes, from the same database "
      "(the main server's SQLite file; the run's PostgreSQL database), by the same SQL, through the fastest "
      "Rust driver for the engine (rusqlite on the runtime worker, one connection per worker; tokio-postgres, "
      "4 pipelined connections). It gets the same requests as the server, bearer token included, and ignores "
      "the token: **no authentication, no access log, no metrics, no middleware**, while the server verifies "
      "the JWT (from its cache), writes the access log and counts the request. It runs before and after each "
      "of the server's runs (ceiling, server, baseline, ceiling, server, baseline, ..., ceiling); a run's ratio "
      "is its requests/s divided by the mean of the ceiling runs around it; medians, the range in brackets.")
    w("")
    w("| scenario | conns | requests/s | ceiling requests/s | ratio to the ceiling | target | |")
    w("|---|---:|---:|---:|---:|---|---|")
    for row in sorted(measured, key=lambda r: (order.index(r["key"]), r["conns"])):
        spec = SCENARIOS[row["key"]]
        floor = spec["ceiling"]
        ceiling = ceilings.get((row["key"], row["conns"]), {})
        target_text = f"≥ {floor:.0%} of the ceiling" if floor is not None else "—"
        if floor is None:
            verdict = ""
        elif row.get("failed_runs") or ceiling.get("failed_runs"):
            verdict = "missed (run failed)"
        elif row.get("errors") or ceiling.get("errors"):
            verdict = "missed (errors)"
        else:
            verdict = "met" if row["ceiling_ratio"] >= floor else "missed"
        w(f"| {spec['label']} | {row['conns']} | {fmt_rps(row['rps'])} | {fmt_rps(row['ceiling_rps'])} | "
          f"{fmt_range(row, 'ceiling_ratio')} | {target_text} | {verdict} |")
        if floor is None:
            continue
        verdicts.append((f"{spec['label']} against the driver's ceiling at {row['conns']} connections", verdict))
    post = next((r for r in rows if r["key"] == "resource-post-sqlite" and "rps" in r), None)
    if post is not None:
        target_text, verdict = judge(SCENARIOS["resource-post-sqlite"]["target"], post)
        # Judged (and counted) in the main table; repeated here so the database targets read together.
        label = SCENARIOS["resource-post-sqlite"]["label"]
        w(f"| {label}, no ceiling (bench-reads only reads) | {post['conns']} | {fmt_rps(post['rps'])} | — | — | "
          f"{target_text} | {verdict} |")
    w("")
    w("What the database work costs: each ceiling as a share of raw hyper (`bench-limit`), from the baseline runs "
      "around each ceiling run.")
    w("")
    w("| ceiling | conns | requests/s | p50 | p99 | errors | bench-limit requests/s | share of bench-limit |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (key, conns), ceiling in sorted(ceilings.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        label = SCENARIOS[key].get("ceiling_label", key)
        if "rps" not in ceiling:
            w(f"| ceiling: {label} | {conns} | failed | | | | | |")
            continue
        base = fmt_rps(ceiling["baseline_rps"]) if ceiling.get("baseline_rps") else "—"
        w(f"| ceiling: {label} | {conns} | {fmt_rps(ceiling['rps'])} | {fmt_us(ceiling['p50_us'])} | "
          f"{fmt_us(ceiling['p99_us'])} | {ceiling['errors']:,} | {base} | {fmt_range(ceiling, 'ratio')} |")
    w("")


def keys_section(rows: list[dict], w, verdicts: list) -> None:
    """A create with an Idempotency-Key against the same create without, per engine and connection count: the
    ratio of their ratios to the baseline runs around each (so a drifting machine cancels out)."""
    pairs = []
    for keyed in rows:
        if not keyed["key"].startswith("resource-post-key-") or keyed.get("ratio") is None:
            continue
        plain_key = keyed["key"].replace("resource-post-key-", "resource-post-")
        plain = next((r for r in rows if r["key"] == plain_key and r["conns"] == keyed["conns"]), None)
        if plain is not None and plain.get("ratio"):
            pairs.append((plain, keyed))
    if not pairs:
        return
    w("## What an Idempotency-Key costs a create")
    w("")
    w("The same create with a fresh `Idempotency-Key` each time (the key, the request's fingerprint and the answer "
      "stored in the create's transaction) against the create without one, both measured in this run between the "
      "same baseline runs; the budget is 25% more time per create, i.e. at least "
      f"{KEY_COST_LIMIT:.0%} of the plain create's requests/s.")
    w("")
    w("| create | conns | without a key | with a key | p99 without | p99 with | with / without | target | |")
    w("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for plain, keyed in sorted(pairs, key=lambda p: (p[0]["key"], p[0]["conns"])):
        share = keyed["ratio"] / plain["ratio"]
        verdict = "met" if share >= KEY_COST_LIMIT and not keyed.get("errors") else "missed"
        engine = "SQLite" if plain["key"].endswith("sqlite") else "PostgreSQL"
        w(f"| {engine} | {plain['conns']} | {fmt_rps(plain['rps'])} | {fmt_rps(keyed['rps'])} | "
          f"{fmt_us(plain['p99_us'])} | {fmt_us(keyed['p99_us'])} | {share:.0%} | ≥ {KEY_COST_LIMIT:.0%} | {verdict} |")
        verdicts.append((f"an Idempotency-Key's cost to a create ({engine}) at {plain['conns']} connections", verdict))
    w("")


def tail_rows(tails: list[dict]) -> list[dict]:
    """The `tail` records grouped by (engine, reader, writers): medians over the rounds of the reads' figures and
    of the writes/s beside them."""
    groups: dict[tuple, dict] = {}
    for r in tails:
        group = groups.setdefault((r["engine"], r["reader"], r["writers"]), {"reads": [], "writes": []})
        group["writes" if r["part"] == "writes" else "reads"].append(r)
    rows = []
    for (engine, reader, writers), group in groups.items():
        reads = [r for r in group["reads"] if "rps" in r]
        writes = [r for r in group["writes"] if "rps" in r]
        row = {"engine": engine, "reader": reader, "writers": writers, "rounds": len(group["reads"]),
               "runs": group["reads"] + group["writes"]}
        if reads:
            row.update(conns=reads[0]["conns"], rps=statistics.median(r["rps"] for r in reads),
                       p50_us=statistics.median(r["p50_us"] for r in reads),
                       p99_us=statistics.median(r["p99_us"] for r in reads),
                       errors=sum(r["errors"] for r in reads), failed_runs=len(group["reads"]) - len(reads))
        if writes:
            row.update(write_conns=writes[0]["conns"], write_rps=statistics.median(r["rps"] for r in writes),
                       write_p99_us=statistics.median(r["p99_us"] for r in writes),
                       write_errors=sum(r["errors"] for r in writes))
        rows.append(row)
    engines, readers = list(TAIL_ENGINES), list(TAIL_READERS)
    rows.sort(key=lambda r: (engines.index(r["engine"]) if r["engine"] in engines else 9,
                             readers.index(r["reader"]) if r["reader"] in readers else 9, r["writers"]))
    return rows


def tail_section(tails: list[dict], meta: dict, w) -> None:
    """"Reads under concurrent writers": GET {id} alone and while a second wrk creates resources."""
    rows = tail_rows(tails)
    if not rows:
        return
    w("## Reads under concurrent writers")
    w("")
    w("`GET /api/resource/v1/{id}` at the connections shown, alone and while a second wrk sends "
      "`POST /api/resource/v1/` (unique names, 1 thread) to the same server for the same "
      f"{meta['duration_s']} s; for each engine, read from the server and from `bench-reads` (the writes always go "
      "to the server; the ceiling shares its database). Runs alternate: alone, with writers; medians over the "
      "rounds. p99 with / alone is the reads' p99 with writers divided by their p99 alone.")
    w("")
    w("| engine | reads from | conns | writers | reads/s | p50 | p99 | p99 with / alone | errors | writes/s | "
      "writes' p99 | write errors |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    alone = {(r["engine"], r["reader"]): r for r in rows if r["writers"] == 0 and "rps" in r}
    for row in rows:
        engine = TAIL_ENGINES.get(row["engine"], row["engine"])
        reader = TAIL_READERS.get(row["reader"], row["reader"])
        writers = f"{row['writers']}" if row["writers"] else "none"
        if "rps" not in row:
            w(f"| {engine} | {reader} | | {writers} | failed | | | | | | | |")
            continue
        base = alone.get((row["engine"], row["reader"]))
        growth = f"{row['p99_us'] / base['p99_us']:.2f}×" if row["writers"] and base and base["p99_us"] else "—"
        writes = fmt_rps(row["write_rps"]) if "write_rps" in row else "—"
        write_p99 = fmt_us(row["write_p99_us"]) if "write_p99_us" in row else "—"
        write_errors = f"{row['write_errors']:,}" if "write_errors" in row else "—"
        w(f"| {engine} | {reader} | {row['conns']} | {writers} | {fmt_rps(row['rps'])} | {fmt_us(row['p50_us'])} | "
          f"{fmt_us(row['p99_us'])} | {growth} | {row['errors']:,} | {writes} | {write_p99} | {write_errors} |")
    w("")


def cmd_report(args) -> int:
    records = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()]
    meta = json.loads(Path(args.meta).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    aggregated = aggregate(paired(records))
    rows = [r for r in aggregated if r["role"] == "scenario"]
    ceilings = {(r["key"], r["conns"]): r for r in aggregated if r["role"] == "ceiling"}
    tails = [r for r in records if r["role"] == "tail"]
    baselines = [r for r in records if r["role"] == "baseline"]
    skips = [r for r in records if r["role"] == "skip"]
    order = list(SCENARIOS)
    rows.sort(key=lambda r: (order.index(r["key"]) if r["key"] in order else 99, r["conns"]))

    verdicts: list[tuple[str, str]] = []
    lines = []
    w = lines.append
    w("# Benchmark results")
    w("")
    w(
        f"Run on {meta['date']} on {meta['cores']} cores ({meta['cpu']}), {meta['memory_gib']:.1f} GiB memory, "
        f"{meta['os']}; {meta['rustc']}; {meta['wrk']}; commit {meta['commit']}. "
        f"The whole run took {meta.get('total_s', 0) / 60:.1f} min after the build."
    )
    w("")
    w(
        f"Load average when the run started: {meta['loadavg_start']}; when it ended: {meta.get('loadavg_end', '?')}. "
        "The machine is shared, so absolute numbers drift between runs; the ratios, measured side by side, hold."
    )
    w("")
    w(
        f"Every line is {meta.get('rounds', 1)} wrk runs of {meta['duration_s']} s each (after a {meta['warmup_s']} s "
        f"warm-up of the same scenario), {meta['threads']} wrk threads (1 for 1 connection), HTTP/1.1 keep-alive, "
        "loopback. The baseline (`bench-limit`, a raw hyper server answering `{\"status\":\"OK\"}`) runs before "
        "and after each of them at the same connection count; a run's ratio is its requests/s divided by the "
        "mean of the two baseline runs around it. The table shows medians over the runs (requests/s, p50, p99, "
        "baseline, **ratio**, with the ratios' range in brackets); **errors** are summed. requests/s counts only "
        "answers below 400; errors are wrk's socket errors, timeouts and answers of 400 or more. "
        f"The server runs with the access log on (`access_log=true`, stderr to a file) and a temporary SQLite "
        f"database unless the line says otherwise."
    )
    w("")
    w("## Throughput and latency")
    w("")
    w("| scenario | conns | requests/s | p50 | p99 | errors | baseline requests/s | ratio | target | |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    # Measured rows and skipped scenarios, in the order of SCENARIOS, then by connections.
    entries = [(order.index(r["key"]) if r["key"] in order else 99, r["conns"], r) for r in rows]
    entries += [(order.index(k["key"]) if k["key"] in order else 99, 0, k) for k in skips]
    entries.sort(key=lambda e: (e[0], e[1]))
    for _, _, row in entries:
        spec = SCENARIOS.get(row["key"], {"label": row["key"], "target": None})
        if row["role"] == "skip":
            w(f"| {spec['label']} | | skipped: {row['reason']} | | | | | | | |")
            continue
        target_text, verdict = judge(spec["target"], row)
        if "rps" not in row:
            w(f"| {spec['label']} | {row['conns']} | failed | | | | | | {target_text} | {verdict} |")
        else:
            base = fmt_rps(row["baseline_rps"]) if row["baseline_rps"] else "—"
            ratio = f"{row['ratio']:.0%}" if row["ratio"] is not None else "—"
            if row["ratio"] is not None and row["rounds"] > 1:
                ratio += f" ({row['ratio_min']:.0%}–{row['ratio_max']:.0%})"
            w(
                f"| {spec['label']} | {row['conns']} | {fmt_rps(row['rps'])} | {fmt_us(row['p50_us'])} | "
                f"{fmt_us(row['p99_us'])} | {row['errors']:,} | {base} | {ratio} | {target_text} | {verdict} |"
            )
        if verdict:
            unit = "connection" if row["conns"] == 1 else "connections"
            verdicts.append((f"{spec['label']} at {row['conns']} {unit}", verdict))
    w("")

    # The database issue's target is relative to greeting v1. Both are compared through their ratios to the
    # baseline runs beside them, so a slow spell of the shared machine during one of them does not skew it.
    v1_ratio = {r["conns"]: r["ratio"] for r in rows if r["key"] == "greeting-v1" and r.get("ratio")}
    relative = [r for r in rows if r["key"] in VS_GREETING_V1 and r.get("ratio") and v1_ratio.get(r["conns"])]
    if relative:
        w("## Against greeting v1")
        w("")
        w("Each side's ratio to the baseline runs around it, divided: (scenario / baseline) / (greeting v1 / baseline).")
        w("")
        w("| scenario | conns | ratio to baseline | greeting v1's ratio to baseline | share of greeting v1 | target | |")
        w("|---|---:|---:|---:|---:|---|---|")
        for row in sorted(relative, key=lambda r: (order.index(r["key"]), r["conns"])):
            spec = SCENARIOS[row["key"]]
            share = row["ratio"] / v1_ratio[row["conns"]]
            floor = VS_GREETING_V1[row["key"]]
            target_text, verdict = ("—", "") if floor is None else (f"≥ {floor:.0%} of greeting v1",
                                                                     "met" if share >= floor else "missed")
            w(f"| {spec['label']} | {row['conns']} | {row['ratio']:.0%} | {v1_ratio[row['conns']]:.0%} | "
              f"{share:.0%} | {target_text} | {verdict} |")
            if verdict:
                verdicts.append((f"{spec['label']} against greeting v1 at {row['conns']} connections", verdict))
        w("")

    ceiling_section(rows, ceilings, order, w, verdicts)
    keys_section(rows, w, verdicts)
    tail_section(tails, meta, w)

    # What metrics cost: the same scenario on a server with metrics on (the default) and off, each through its
    # ratio to the baseline runs beside it.
    ratio_of = {(r["key"], r["conns"]): r["ratio"] for r in rows if r.get("ratio")}
    costs = [(key, conns) for (key, conns) in ratio_of if f"{key}-nometrics" in SCENARIOS
             and (f"{key}-nometrics", conns) in ratio_of]
    if costs:
        w("## Cost of metrics")
        w("")
        w("The same requests on a server with metrics on (the default) and on one with `metrics_enabled=false`, "
          "each as its ratio to the baseline runs beside it. Cost = 1 − on / off.")
        w("")
        w("| scenario | conns | metrics on | metrics off | cost | target | |")
        w("|---|---:|---:|---:|---:|---|---|")
        for key, conns in sorted(costs, key=lambda kc: (order.index(kc[0]), kc[1])):
            on, off = ratio_of[(key, conns)], ratio_of[(f"{key}-nometrics", conns)]
            cost = 1 - on / off
            verdict = "met" if cost <= METRICS_COST_LIMIT else "missed"
            w(f"| {SCENARIOS[key]['label']} | {conns} | {on:.0%} | {off:.0%} | {cost:.1%} | "
              f"≤ {METRICS_COST_LIMIT:.0%} | {verdict} |")
            verdicts.append((f"cost of metrics on {SCENARIOS[key]['label']} at {conns} connections", verdict))
        w("")

    # Resource figures.
    res = meta
    w("## Resources")
    w("")
    w("| figure | value | target | |")
    w("|---|---:|---|---|")

    def resource_line(label, value, shown, target_text, ok):
        verdict = "" if ok is None else ("met" if ok else "missed")
        w(f"| {label} | {shown} | {target_text} | {verdict} |")
        if verdict:
            verdicts.append((label, verdict))

    idle = res.get("idle_rss_kib")
    if idle is not None:
        shown = fmt_mib(idle * 1024)
        if res.get("idle_anon_kib") is not None:
            # File-backed pages are the binary's code mapped from the page cache; anonymous ones are the heap,
            # stacks and caches: the part that grows with load.
            anon = res["idle_anon_kib"]
            shown += f" ({fmt_mib(anon * 1024)} anonymous, {fmt_mib((idle - anon) * 1024)} file-backed)"
        resource_line("idle RSS after start (VmRSS)", idle, shown, "≤ 15 MiB",
                      idle * 1024 <= RESOURCE_TARGETS["idle_rss"])
    peak = res.get("peak_rss_kib")
    if peak is not None:
        label = "peak RSS during the 256-connection runs (VmHWM)"
        if res.get("peak_note"):
            label += f" ({res['peak_note']})"
        resource_line(label, peak, fmt_mib(peak * 1024), "≤ 64 MiB", peak * 1024 <= RESOURCE_TARGETS["peak_rss"])
    startup = res.get("startup")
    if startup:
        times = startup["times_s"]
        shown = (
            f"{startup['median_s'] * 1000:.1f} ms (median of {len(times)}; "
            f"{min(times) * 1000:.1f}–{max(times) * 1000:.1f} ms)"
        )
        resource_line("process start to the first 200 from `/healthz/` (existing database)", startup, shown,
                      "< 100 ms", startup["median_s"] < RESOURCE_TARGETS["startup_s"])
    size = res.get("binary_bytes")
    if size is not None:
        stripped = res.get("binary_stripped_bytes")
        shown = fmt_mib(size) + (f" ({fmt_mib(stripped)} stripped)" if stripped else "")
        resource_line("release binary size (`target/release/rust-api-axum`)", size, shown, "—", None)
    if res.get("baseline_idle_rss_kib") is not None:
        shown = f"{fmt_mib(res['baseline_idle_rss_kib'] * 1024)} idle, {fmt_mib(res['baseline_peak_rss_kib'] * 1024)} peak"
        if res.get("baseline_binary_bytes"):
            shown += f", binary {fmt_mib(res['baseline_binary_bytes'])}"
        resource_line("for comparison: bench-limit RSS", None, shown, "—", None)
    w("")

    spikes = [json.loads(line) for line in Path(args.spikes).read_text().splitlines() if line.strip()] \
        if args.spikes and Path(args.spikes).exists() else []
    if spikes:
        w("## Connection spikes")
        w("")
        w("A fresh server and a fresh baseline each get N keep-alive connections that send one `GET /healthz/`, "
          "read the answer and stay open; then all close. RSS (`VmRSS`) idle before, with all N open, and 5 s and "
          "30 s after they closed. Per connection = (open − idle) / N. Both processes run with the same "
          "file-descriptor limit; connections open in batches of 250 so the listen backlog never overflows.")
        w("")
        w("| process | N | idle | N open | per connection | ratio to baseline | 5 s after | 30 s after | target | |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
        per_conn = {}
        for spike in spikes:
            per_conn[(spike["role"], spike["count"])] = (spike["held"]["VmRSS"] - spike["idle"]["VmRSS"]) / spike["count"]
        for spike in sorted(spikes, key=lambda s: (s["count"], s["role"] != "server")):
            role, count = spike["role"], spike["count"]
            idle_kib = spike["idle"]["VmRSS"]
            per = per_conn[(role, count)]
            after = {k: v["VmRSS"] for k, v in spike["after"].items()}
            settled = after.get(SPIKE_SETTLED_AFTER)
            failed = spike["open"] < count
            if role == "server":
                base = per_conn.get(("baseline", count))
                ratio = per / base if base else None
                ratio_text = f"{ratio:.2f}×" if ratio else "—"
                ok_ratio = ratio is not None and ratio <= SPIKE_PER_CONNECTION_LIMIT and not failed
                ok_settled = settled is not None and settled <= SPIKE_SETTLED_LIMIT * idle_kib
                target = f"≤ {SPIKE_PER_CONNECTION_LIMIT}× per connection; ≤ {SPIKE_SETTLED_LIMIT:g}× idle after 30 s"
                verdict = "met" if ok_ratio and ok_settled else "missed"
                verdicts.append((f"connection spike of {count:,}: per connection {ratio_text}, 30 s after "
                                 f"{fmt_mib((settled or 0) * 1024)}", verdict))
                label = "rust-api-axum"
            else:
                ratio_text, target, verdict, label = "1.00×", "—", "", "bench-limit (raw hyper)"
            opened = f"{fmt_mib(spike['held']['VmRSS'] * 1024)}" + (f" ({spike['open']:,} opened)" if failed else "")
            w(f"| {label} | {count:,} | {fmt_mib(idle_kib * 1024)} | {opened} | {per:.1f} KiB | {ratio_text} | "
              f"{fmt_mib(after.get('5', 0) * 1024)} | {fmt_mib((settled or 0) * 1024)} | {target} | {verdict} |")
        w("")

    note = write_plot(rows, baselines, meta, out / "latest.svg", Path(args.work))
    w("## Requests/s against connections")
    w("")
    if note:
        w(f"({note})")
    else:
        w("![requests/s against connections: greeting v1 and v3 against the raw hyper baseline](latest.svg)")
    w("")

    met = [v for v in verdicts if v[1] == "met"]
    missed = [v for v in verdicts if v[1] != "met"]
    w("## Targets")
    w("")
    w(f"{len(met)} met, {len(missed)} missed.")
    for label, verdict in missed:
        w(f"- {verdict}: {label}")
    w("")
    w("Reproduce with `./bench/run` from the repository root; see [bench/README.md](../README.md).")
    (out / "latest.md").write_text("\n".join(lines) + "\n")

    summary = {"meta": meta, "rows": rows, "ceilings": list(ceilings.values()), "tail": tail_rows(tails),
               "baselines": baselines, "skips": skips,
               "targets": {"met": len(met), "missed": [f"{label}: {verdict}" for label, verdict in missed]}}
    (out / "latest.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("free-port", help="print a free TCP port on 127.0.0.1").set_defaults(func=cmd_free_port)

    p = sub.add_parser("wait-200", help="wait until GET PATH answers 200")
    p.add_argument("port", type=int)
    p.add_argument("--path", default="/healthz/")
    p.add_argument("--pid", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60)
    p.set_defaults(func=cmd_wait_200)

    p = sub.add_parser("startup", help="time spawn -> first 200, several times")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--log", required=True)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_startup)

    p = sub.add_parser("seed", help="create resources; print the first id")
    p.add_argument("port", type=int)
    p.add_argument("token")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--prefix", default="seed")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("drive", help="send a fixed number of requests on one connection")
    p.add_argument("port", type=int)
    p.add_argument("path")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--token", default="")
    p.add_argument("--post", action="store_true")
    p.add_argument("--prefix", default="profile")
    p.set_defaults(func=cmd_drive)

    p = sub.add_parser("per-request", help="callgrind_annotate output (stdin) -> instructions per request")
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--width", type=int, default=150)
    p.set_defaults(func=cmd_per_request)

    p = sub.add_parser("spike", help="RSS of PID before, during and after COUNT open keep-alive connections")
    p.add_argument("port", type=int)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--path", default="/healthz/")
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--settle", type=float, default=1.0, help="seconds to wait before each reading under load")
    p.add_argument("--after", type=float, nargs="+", default=[5, 30], help="seconds after closing to read RSS")
    p.add_argument("--role", default="server", help="what the process is, for the report (server or baseline)")
    p.set_defaults(func=cmd_spike)

    p = sub.add_parser("record", help="turn wrk output (stdin) into one JSON record")
    for name in ("chain", "role", "key"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--conns", type=int, required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--set", action="append", default=[], help="NAME=VALUE: one more field (a number if all digits)")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("meta", help="print the run's metadata as JSON")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--num", action="append", default=[])
    p.add_argument("--file", action="append", default=[])
    p.set_defaults(func=cmd_meta)

    p = sub.add_parser("report", help="write latest.md, latest.json and latest.svg")
    p.add_argument("--results", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--spikes", default="", help="JSON lines of `spike`, each with a role (server or baseline)")
    p.set_defaults(func=cmd_report)

    args = parser.parse_args()
    if args.command == "startup" and args.argv[:1] == ["--"]:
        args.argv = args.argv[1:]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
