"""Shared by the Python peers: argument parsing, RESULT lines, self-checks."""
import argparse
import resource
import sys


def parse(**defaults):
    parser = argparse.ArgumentParser()
    for name, value in defaults.items():
        parser.add_argument("--" + name, type=type(value), default=value)
    return parser.parse_args()


def report(metric, value):
    print(f"RESULT metric={metric} value={value:.6g}", flush=True)


def check(ok, what, got, want):
    if not ok:
        print(f"CHECK FAILED: {what}: got {got}, want {want}", file=sys.stderr)
        sys.exit(3)
    print(f"CHECK {what} ok")


def peak_rss_mib():
    """VmHWM of /proc/self/status (ru_maxrss survives execve: it would count the runner)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
