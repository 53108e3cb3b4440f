#!/usr/bin/env python3
"""The allocator comparison of ./bench/allocators (standard library only): starts the server built with each
allocator and the baseline, measures idle RSS, greeting v1's requests/s (wrk, interleaved with the baseline) and
a connection spike, and writes allocators.md."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench  # noqa: E402

VARIANTS = {
    "glibc": "glibc malloc, trimmed by the server when it holds more than 4 MiB free (the default)",
    "jemalloc": "tikv-jemallocator 0.6, background purging threads",
    "mimalloc": "mimalloc 0.1 (its default purging)",
}


class Process:
    """One server or baseline on a free loopback port, stopped by `stop` (or at exit, whatever happens)."""

    started: list[Process] = []

    def __init__(self, name: str, argv: list[str], work: Path):
        self.port = bench.free_port()
        argv = [part.replace("{port}", str(self.port)) for part in argv]
        self.log = (work / f"{name}.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log)
        Process.started.append(self)
        deadline = time.monotonic() + 60
        while bench.probe(self.port) != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start (see {work}/{name}.log)")
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_all(args, prefix: str) -> dict[str, Process]:
    processes = {"baseline": Process(f"{prefix}baseline", [args.limit, "--host", "127.0.0.1", "--port", "{port}"],
                                     args.work)}
    for variant in VARIANTS:
        folder = args.work / f"{prefix}{variant}"
        folder.mkdir(parents=True, exist_ok=True)
        argv = [str(args.binaries / variant), "--host", "127.0.0.1", "--port", "{port}", "--instance-path",
                str(folder), "--db", f"sqlite://{folder}/bench.sqlite"]
        processes[variant] = Process(f"{prefix}{variant}", argv, args.work)
    return processes


def wrk_rps(args, port: int, path: str, seconds: float) -> float:
    out = subprocess.run(["wrk", "-t2", f"-c{args.connections}", f"-d{int(seconds)}s", "--timeout", "5s", "--latency",
                          "-s", str(Path(__file__).parent / "report.lua"), f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True).stdout
    figures = bench.wrk_figures(out)
    if figures is None:
        raise SystemExit(f"wrk printed no figures: {out[-300:]}")
    return figures["requests"] / figures["duration_us"] * 1e6 if figures["status_errors"] == 0 else 0.0


def commit() -> str:
    """The checked-out commit, and whether the work tree differs from it (as bench/run says it)."""
    git = ["git", "-C", str(Path(__file__).parents[2]), "--no-optional-locks"]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return (head or "unknown") + (" with uncommitted changes" if dirty.stdout.strip() else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binaries", type=Path, required=True)
    parser.add_argument("--limit", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--spike", type=int, default=8000)
    args = parser.parse_args()

    # Throughput and idle RSS: all processes up at once, wrk against one at a time.
    processes = start_all(args, "")
    time.sleep(1)
    idle = {name: bench.status_kib(p.proc.pid) for name, p in processes.items()}
    for p in processes.values():
        wrk_rps(args, p.port, "/api/greeting/v1/", 3)
    ratios: dict[str, list[float]] = {v: [] for v in VARIANTS}
    rps: dict[str, list[float]] = {v: [] for v in VARIANTS}
    before = wrk_rps(args, processes["baseline"].port, "/healthz/", args.duration)
    for _ in range(args.rounds):
        for variant in VARIANTS:
            value = wrk_rps(args, processes[variant].port, "/api/greeting/v1/", args.duration)
            after = wrk_rps(args, processes["baseline"].port, "/healthz/", args.duration)
            rps[variant].append(value)
            ratios[variant].append(value / ((before + after) / 2))
            before = after
    for p in processes.values():
        p.stop()

    # The spike: fresh processes, one spike after another (each waits 30 s after closing).
    spikes = {}
    spiking = start_all(args, "spike-")
    for name in ["baseline", *VARIANTS]:
        p = spiking[name]
        result = subprocess.run([sys.executable, str(Path(__file__).parent / "bench.py"), "spike", str(p.port),
                                 "--pid", str(p.proc.pid), "--count", str(args.spike)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"the spike on {name} failed: {result.stderr.strip()[-300:]}")
        spikes[name] = json.loads(result.stdout)
        p.stop()

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "allocators.json").write_text(json.dumps({"idle": idle, "rps": rps, "ratios": ratios,
                                                          "spikes": spikes}, indent=1) + "\n")
    base_per = (spikes["baseline"]["held"]["VmRSS"] - spikes["baseline"]["idle"]["VmRSS"]) / args.spike
    lines = [
        "# Allocators side by side",
        "",
        f"Measured by `./bench/allocators` on {time.strftime('%Y-%m-%d')} ({bench.machine()['cpu']}, "
        f"{bench.machine()['cores']} cores), commit {commit()}.",
        "The same release server built three ways, measured in one run. Greeting v1: wrk, "
        f"{args.connections} connections, {args.rounds} rounds of {args.duration:g} s, each run's requests/s "
        "divided by the mean of the baseline (`bench-limit`) runs before and after it; the median and the range. "
        "Idle: `VmRSS` (anonymous part in brackets) one second after the first 200. Spike: a fresh process gets "
        f"{args.spike:,} keep-alive connections that each send `GET /healthz/` and stay open, then all close.",
        "",
        "| allocator | greeting v1 requests/s | ratio to baseline | idle RSS | spike: open | per connection "
        "| 5 s after | 30 s after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ["baseline", *VARIANTS]:
        s = spikes[name]
        per = (s["held"]["VmRSS"] - s["idle"]["VmRSS"]) / args.spike
        mib = lambda kib: bench.fmt_mib(kib * 1024)  # noqa: E731
        if name == "baseline":
            label, rate, ratio = "bench-limit (raw hyper, glibc, no trimming)", "—", "1.00"
        else:
            label = f"{name}: {VARIANTS[name]}"
            rate = bench.fmt_rps(statistics.median(rps[name]))
            ratio = f"{statistics.median(ratios[name]):.0%} ({min(ratios[name]):.0%}–{max(ratios[name]):.0%})"
        lines.append(
            f"| {label} | {rate} | {ratio} | {mib(idle[name]['VmRSS'])} ({mib(idle[name]['RssAnon'])}) | "
            f"{mib(s['held']['VmRSS'])} | {per:.1f} KiB ({per / base_per:.2f}×) | {mib(s['after']['5']['VmRSS'])} | "
            f"{mib(s['after']['30']['VmRSS'])} |")
    lines += ["", "Reproduce with `./bench/allocators`; the choice and its reasons are in "
              "`crates/platform/src/memory.rs` and the README's Performance section.", ""]
    (args.out / "allocators.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        for process in Process.started:
            process.stop()
