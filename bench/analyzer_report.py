#!/usr/bin/env python3
"""Renders bench/analyzer's results into its section of docs/BENCHMARKS.md (between the
`analyzer` markers, inserted before "## Reproduce" the first time).

Usage: analyzer_report.py WORK ROWS docs/BENCHMARKS.md
"""

import datetime
import json
import sys
from pathlib import Path

work, rows, target = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
load = lambda name: json.loads((work / name).read_text())  # noqa: E731
ours, ours_large = load(f"ours-{rows}.json"), load(f"ours-{rows * 10}.json")
peers = [load(f"evidently-{rows}.json"), load(f"whylogs-{rows}.json")]


def rate(r):
    return r["rows"] / r["seconds"]


def mib(kib):
    return f"{kib / 1024:,.0f} MiB"


lines = [
    "<!-- analyzer:begin (written by bench/analyzer) -->",
    "## Drift analyzer",
    "",
    f"Run: {datetime.date.today().isoformat()}, same machine. A baseline and one monitoring run over generated CSVs of "
    f"{rows:,} rows each (30 columns: 25 numeric, 5 categorical; in the window 3 numeric columns moved by one "
    "standard deviation and one categorical column's mix changed), timed from reading the files to the finished "
    "result. Ours: `mlops analyze` as a baselining job (statistics.json, constraints.json) then as a monitoring "
    "job (statistics.json, constraint_violations.json), release build, one process each (peak RSS is the larger). "
    f"Evidently {peers[0]['version']}: `Report([DataDriftPreset()])` of the window against the baseline, both read "
    f"with pandas. whylogs {peers[1]['version']}: a profile of each file.",
    "",
    "| tool | rows read | seconds | rows/s | peak RSS | ours faster by |",
    "|---|---|---|---|---|---|",
]
for r in [ours] + peers:
    name = "ours" if r["tool"] == "ours" else r["tool"]
    ratio = "" if r is ours else f"**{rate(ours) / rate(r):.1f}×**"
    lines.append(f"| {name} | {r['rows']:,} | {r['seconds']:.2f} | {rate(r):,.0f} | {mib(r['peak_rss_kib'])} | {ratio} |")
change = (ours_large["peak_rss_kib"] - ours["peak_rss_kib"]) / ours["peak_rss_kib"] * 100
lines += [
    "",
    f"Ours at ten times the rows ({ours_large['rows']:,} read): {ours_large['seconds']:.2f} s, "
    f"{rate(ours_large):,.0f} rows/s, peak RSS {mib(ours_large['peak_rss_kib'])} ({change:+.1f} % against "
    f"{rows:,} rows: one pass, sketches bounded by the columns). Features ours flagged in the window "
    f"(Robust, threshold 0.1): {', '.join(ours['flagged'])}.",
    "",
    "Reproduce: `bench/analyzer` (`BENCH_ANALYZER_ROWS`, default 1000000; peers pinned in "
    "`bench/analyzer-requirements-*.txt`); `bench/run` runs it last.",
    "<!-- analyzer:end -->",
]
section = "\n".join(lines) + "\n"
text = target.read_text()
begin, end = "<!-- analyzer:begin", "<!-- analyzer:end -->"
if begin in text:
    head = text[: text.index(begin)]
    tail = text[text.index(end) + len(end):].lstrip("\n")
    text = head + section + "\n" + tail
elif "## Reproduce" in text:
    i = text.index("## Reproduce")
    text = text[:i] + section + "\n" + text[i:]
else:
    text = text.rstrip("\n") + "\n\n" + section
target.write_text(text)
