"""shap's side of bench/explainability: KernelExplainer (the same baseline rows and coalition
budget as ours) over the first KERNEL_ROWS rows, TreeExplainer over all rows. Prints one JSON
line per run: {"tool", "method", "rows", "seconds", "peak_rss_kib"}; each run in its own process
so peak RSS is its own.

Usage: explain_peers.py WORK_DIR kernel|tree KERNEL_ROWS NUM_SAMPLES
"""

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import shap
import xgboost as xgb

work, method, kernel_rows, num_samples = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
booster = xgb.Booster(model_file=str(work / "model.json"))
data = np.loadtxt(work / "data.csv", delimiter=",", skiprows=1, dtype=np.float32)
start = time.perf_counter()
if method == "kernel":
    background = np.loadtxt(work / "baseline.csv", delimiter=",", dtype=np.float32)
    model = lambda rows: booster.predict(xgb.DMatrix(np.asarray(rows, dtype=np.float32)))  # noqa: E731
    explainer = shap.KernelExplainer(model, background)
    values = explainer.shap_values(data[:kernel_rows], nsamples=num_samples, l1_reg=False, silent=True)
    rows = kernel_rows
else:
    values = shap.TreeExplainer(booster).shap_values(data)
    rows = len(data)
seconds = time.perf_counter() - start
np.abs(np.asarray(values)).mean(axis=0)
print(json.dumps({"tool": f"shap {shap.__version__}", "method": method, "rows": rows, "seconds": seconds,
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
