"""Benchmark inputs: the model both servers load and the batch CSV (whose first rows are also the
real-time requests).

The model is XGBoost `binary:logistic`, 100 trees of depth 4 on scikit-learn's breast-cancer
data (30 features), as the peers' notes describe; the batch CSV holds rows drawn from that data
with 1% noise (one million rows; the ten-million-row file is this one ten times over, made by
`run`). Deterministic: fixed seeds.

Usage: make_data.py OUT_DIR ROWS
"""

import os
import sys

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer


def main() -> None:
    out, rows = sys.argv[1], int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    x, y = load_breast_cancer(return_X_y=True)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "nthread": 1, "seed": 7},
        xgb.DMatrix(x, label=y),
        num_boost_round=100,
    )
    booster.save_model(os.path.join(out, "model.json"))

    rng = np.random.default_rng(11)
    path = os.path.join(out, "input-1m.csv")
    with open(path, "w") as f:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            picked = x[rng.integers(0, len(x), n)]
            noisy = (picked * rng.normal(1.0, 0.01, picked.shape)).astype(np.float32)
            np.savetxt(f, noisy, fmt="%.6g", delimiter=",")


if __name__ == "__main__":
    main()
