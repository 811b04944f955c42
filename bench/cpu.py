"""CPU time of one benchmark cell: the server's (a process and all its descendants, so a custom
algorithm's child process counts with the server that runs it) and the load client's.

Throughput on a 2-core machine shared with the client is a mix of what the server costs and how
the kernel schedules the two; CPU per request is what the server costs alone. bench/run takes a
snapshot before and after each wrk cell and writes the difference next to wrk's output.

It also takes, from the same snapshots, the time the server's threads were ready to run but
waited for a core (the kernel's run-queue delay, /proc/<pid>/task/<tid>/schedstat), and when
given the server's metrics address its request-latency histogram, so that the cell can set the
server's own latency beside the client's.

Usage:
  cpu.py snapshot PID [METRICS_URL]
                                 prints the tree's CPU so far, as JSON (with the histogram of
                                 `mlops_http_request_duration_seconds` scraped from METRICS_URL)
  cpu.py cell BEFORE AFTER TIMES_BEFORE TIMES_AFTER
                                 prints the cell's CPU as JSON: the server's from two snapshots,
                                 the client's from bash's `times` before and after wrk (the
                                 shell's children: wrk alone ran in between)
"""

import json
import os
import re
import sys
import urllib.request

HISTOGRAM = re.compile(
    r'^mlops_http_request_duration_seconds_bucket\{method="([^"]*)",route="([^"]*)",le="([^"]*)"\} (\d+)$', re.M
)


def process_tree(pid: int) -> list:
    """`pid` and its descendants that are alive now."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(entry))
    tree, i = [pid], 0
    while i < len(tree):
        tree.extend(children.get(tree[i], []))
        i += 1
    return tree


def snapshot(pid: int, metrics_url: str = "") -> dict:
    """User + system seconds, involuntary context switches (the kernel took the CPU away) and
    seconds spent waiting for a core of the tree so far; with `metrics_url`, the server's request
    latency histogram ({"METHOD route": {le: count}})."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds, involuntary, waiting = 0.0, 0, 0.0
    for p in process_tree(pid):
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime and stime (the 14th and 15th fields; the split starts at the 3rd) are the whole
        # process's; context switches are counted per thread.
        seconds += (int(fields[11]) + int(fields[12])) / ticks
        for task in os.listdir(f"/proc/{p}/task") if os.path.isdir(f"/proc/{p}/task") else []:
            try:
                status = open(f"/proc/{p}/task/{task}/status").read()
            except OSError:
                continue
            involuntary += int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
            # Per thread, of the threads alive now: on CPU ns, run-queue delay ns, timeslices.
            try:
                waiting += int(open(f"/proc/{p}/task/{task}/schedstat").read().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                pass
    result = {"seconds": seconds, "involuntary": involuntary, "waiting": waiting}
    if metrics_url:
        text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
        histogram = {}
        for method, route, le, count in HISTOGRAM.findall(text):
            histogram.setdefault(f"{method} {route}", {})[le] = int(count)
        result["histogram"] = histogram
    return result


def children_seconds(times_output: str) -> float:
    """User + system seconds of the shell's children from bash's `times` (its second line)."""
    line = times_output.strip().splitlines()[-1]
    total = 0.0
    for minutes, secs in re.findall(r"(\d+)m([\d.]+)s", line):
        total += int(minutes) * 60 + float(secs)
    return total


def main() -> None:
    if sys.argv[1] == "snapshot":
        print(json.dumps(snapshot(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")))
    elif sys.argv[1] == "cell":
        before, after = json.loads(sys.argv[2]), json.loads(sys.argv[3])
        client = children_seconds(open(sys.argv[5]).read()) - children_seconds(open(sys.argv[4]).read())
        cell = {
            "server_seconds": after["seconds"] - before["seconds"],
            "server_involuntary": after["involuntary"] - before["involuntary"],
            "client_seconds": client,
        }
        if "waiting" in before and "waiting" in after:
            # Threads that ended during the cell take their delay with them: a lower bound.
            cell["server_waiting_seconds"] = max(0.0, after["waiting"] - before["waiting"])
        if "histogram" in before and "histogram" in after:
            cell["server_histogram"] = {
                series: {le: count - before["histogram"].get(series, {}).get(le, 0) for le, count in buckets.items()}
                for series, buckets in after["histogram"].items()
            }
        print(json.dumps(cell))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
