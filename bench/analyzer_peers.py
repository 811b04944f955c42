#!/usr/bin/env python3
"""One peer's baseline + monitoring run over the drift benchmark's CSVs, timed from reading the
files to the finished result (imports excluded); prints JSON with the seconds, the rows read and
the peak RSS (getrusage).

- evidently: a DataDriftPreset report of the window against the baseline (reading both with pandas).
- whylogs: a profile of the baseline and one of the window (its sketches are what drift would use).

Usage: analyzer_peers.py evidently|whylogs baseline.csv window.csv
"""

import json
import os
import resource
import sys
import time

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")

import pandas as pd  # noqa: E402

tool, baseline_path, window_path = sys.argv[1:4]
numeric = [f"n{i}" for i in range(25)]
categorical = [f"c{i}" for i in range(5)]

if tool == "evidently":
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    baseline = pd.read_csv(baseline_path)
    window = pd.read_csv(window_path)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    result = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(window, data_definition=definition),
        Dataset.from_pandas(baseline, data_definition=definition),
    )
    result.dict()
    seconds = time.perf_counter() - start
    version = __import__("evidently").__version__
elif tool == "whylogs":
    import whylogs as why

    start = time.perf_counter()
    baseline = pd.read_csv(baseline_path)
    why.log(pandas=baseline).view()
    window = pd.read_csv(window_path)
    why.log(pandas=window).view()
    seconds = time.perf_counter() - start
    version = why.__version__
else:
    sys.exit(f"unknown tool {tool}")

rows = len(baseline) + len(window)
print(json.dumps({
    "tool": tool,
    "version": version,
    "rows": rows,
    "seconds": seconds,
    "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
}))
