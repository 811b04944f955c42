"""The reference batch transform: pandas reads the CSV, xgboost predicts, pandas writes one
prediction per line, as a data scientist would do it. Prints a JSON line with the seconds from
reading to written (imports excluded) and the process's peak RSS.

Usage: pandas_batch.py MODEL INPUT OUTPUT
"""

import json
import resource
import sys
import time

import numpy as np
import pandas as pd
import xgboost as xgb


def main() -> None:
    model, source, target = sys.argv[1:4]
    booster = xgb.Booster()
    booster.load_model(model)
    started = time.perf_counter()
    frame = pd.read_csv(source, header=None, dtype=np.float32)
    predictions = booster.inplace_predict(frame.to_numpy())
    pd.Series(predictions).to_csv(target, header=False, index=False)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": len(frame), "seconds": seconds, "peak_rss_bytes": peak_kib * 1024}))


if __name__ == "__main__":
    main()
