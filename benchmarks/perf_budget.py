#!/usr/bin/env python3
"""The perf-budget check: instructions per operation of corio's hot paths, counted by
`valgrind --tool=callgrind` (deterministic, unlike time on a shared machine), against
the budgets committed in benchmarks/perf_budget.json.

    python3 benchmarks/perf_budget.py [--build-dir build/bench] [--only nop,queue] [--update]

Each path of the `perf_paths` program (benchmarks/perf/perf_paths.cpp) runs under
callgrind at two sizes n1 < n2; instructions per operation are
(Ir(n2) - Ir(n1)) / (n2 - n1), so start-up and teardown cancel out. Instructions of
functions whose name contains "spin" are left out: how long a thread spins waiting for
another depends on timing, not on the code (keep such loops in out-of-line functions
named *spin*). Valgrind runs one thread at a time; `--fair-sched=yes` hands the
turn over in a fixed order, which keeps the counts of the threaded path (pool_apply)
within a few percent from run to run (with the default scheduler they varied from 765
to 1228 instructions per operation on the same build, by whether the worker parked).
A path costing more than its budget plus the tolerance (10%, or the path's own
"tolerance") fails the check (exit 1). `--update` writes the measured figures as the new budgets: do that
deliberately, in a commit whose message gives the old and new figures.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUDGET = os.path.join(HERE, "perf_budget.json")
SPIN = re.compile(r"spin", re.IGNORECASE)
# A callgrind_annotate line: "  1,234,567 (12.34%)  file:function [object]" (the
# percentage column appears only in newer valgrind versions).
ANNOTATE_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([\d.]+%\)\s+)?(.*)$")


def callgrind(program, path, n, workdir):
    """Runs one path under callgrind; returns (total Ir, Ir in spin functions)."""
    out = os.path.join(workdir, f"callgrind.{path}.{n}")
    cmd = ["valgrind", "--tool=callgrind", "--fair-sched=yes", "--dump-instr=no", "--callgrind-out-file=" + out,
           program, "--path", path, "--n", str(n)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode != 0 or f"CHECK {path} ok" not in p.stdout:
        raise RuntimeError(f"{path} --n {n} failed (exit {p.returncode}): "
                           f"{(p.stderr or p.stdout).strip()[-600:]}")
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    if total is None:
        raise RuntimeError(f"no totals in {out}")
    ann = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", out],
                         capture_output=True, text=True, check=True).stdout
    spin = 0
    for line in ann.splitlines():
        m = ANNOTATE_LINE.match(line)
        if m and "PROGRAM TOTALS" not in line:
            # The function is what follows "file:" and precedes " [object]".
            name = m.group(2).split(" [")[0]
            if SPIN.search(name.split(":", 1)[-1]):
                spin += int(m.group(1).replace(",", ""))
    return total, spin


def write_budget(budget):
    """Writes the budget file with one line per path (readable diffs)."""
    lines = ["{"]
    for key in budget:
        if key != "paths":
            lines.append(f"  {json.dumps(key)}: {json.dumps(budget[key])},")
    lines.append('  "paths": {')
    items = list(budget["paths"].items())
    for i, (path, spec) in enumerate(items):
        comma = "," if i + 1 < len(items) else ""
        lines.append(f"    {json.dumps(path)}: {json.dumps(spec)}{comma}")
    lines.append("  }")
    lines.append("}")
    with open(BUDGET, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--only", help="comma-separated paths")
    ap.add_argument("--update", action="store_true", help="write the measured figures as budgets")
    args = ap.parse_args()

    for tool in ("valgrind", "callgrind_annotate"):
        if shutil.which(tool) is None:
            print(f"perf-budget: {tool} not found (apt-get install valgrind)", file=sys.stderr)
            return 2
    program = os.path.join(os.path.abspath(args.build_dir), "benchmarks", "perf_paths")
    if not os.path.exists(program):
        print(f"perf-budget: {program} not built (cmake --preset bench && cmake --build "
              f"--preset bench --target perf_paths)", file=sys.stderr)
        return 2
    with open(BUDGET) as f:
        budget = json.load(f)
    tolerance = budget["tolerance"]
    only = set(args.only.split(",")) if args.only else None

    rows = []
    failed = False      # a path over its budget
    run_failed = False  # a path that did not run or computed a wrong answer
    with tempfile.TemporaryDirectory(prefix="corio-perf-") as workdir:
        for path, spec in budget["paths"].items():
            if only is not None and path not in only:
                continue
            n1, n2 = spec["n"]
            samples = []
            try:
                # Paths with threads vary a little with the interleaving (a contended
                # lock, a sleeping or a searching worker): their median counts.
                for _ in range(spec.get("repeat", 1)):
                    t1, s1 = callgrind(program, path, n1, workdir)
                    t2, s2 = callgrind(program, path, n2, workdir)
                    samples.append((((t2 - s2) - (t1 - s1)) / (n2 - n1), (s2 - s1) / (n2 - n1)))
            except (RuntimeError, subprocess.SubprocessError) as e:
                print(f"perf-budget: {e}", file=sys.stderr)
                run_failed = True
                continue
            samples.sort()
            per_op, spin_per_op = samples[len(samples) // 2]
            path_tolerance = spec.get("tolerance", tolerance)
            limit = spec["budget"] * (1 + path_tolerance)
            verdict = "ok" if per_op <= limit else "**OVER BUDGET**"
            if per_op > limit:
                failed = True
            elif per_op < spec["budget"] * (1 - 2 * path_tolerance):
                verdict = "ok (well under: lower the budget with --update)"
            rows.append((path, per_op, spin_per_op, spec["budget"], limit, verdict))
            if args.update:
                spec["budget"] = int(per_op + 0.999)

    print("| path | instructions/op | spin left out/op | budget | limit | verdict |")
    print("|---|---|---|---|---|---|")
    for path, per_op, spin, b, limit, verdict in rows:
        print(f"| {path} | {per_op:.1f} | {spin:.1f} | {b} | {limit:.0f} | {verdict} |")
    if run_failed:
        print("perf-budget: FAILED (a path did not run or computed a wrong answer)")
        return 1
    if args.update:
        write_budget(budget)
        print(f"budgets written to {BUDGET}: commit them with these figures in the message")
        return 0
    if failed:
        print("perf-budget: FAILED (a path costs more than its budget + tolerance)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
