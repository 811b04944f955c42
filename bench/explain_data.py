"""Data and model for bench/explainability: 10,000 rows of 30 features (scikit-learn's
make_classification, fixed seed), a 100-tree XGBoost classifier trained on them, and 10 baseline
rows for Kernel SHAP.

Usage: explain_data.py WORK_DIR [ROWS]
"""

import sys
from pathlib import Path

import numpy as np
import xgboost as xgb
from sklearn.datasets import make_classification

work = Path(sys.argv[1])
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
work.mkdir(parents=True, exist_ok=True)
x, y = make_classification(n_samples=rows, n_features=30, n_informative=12, random_state=20261203)
x = x.astype(np.float32)
model = xgb.XGBClassifier(n_estimators=100, max_depth=6, learning_rate=0.1, n_jobs=1, random_state=0)
model.fit(x, y)
model.get_booster().save_model(str(work / "model.json"))
header = ",".join(f"f{i}" for i in range(x.shape[1]))
np.savetxt(work / "data.csv", x, delimiter=",", header=header, comments="", fmt="%.9g")
rng = np.random.default_rng(7)
np.savetxt(work / "baseline.csv", x[rng.choice(rows, 10, replace=False)], delimiter=",", fmt="%.9g")
print(f"wrote {rows} rows, model and baseline to {work}")
