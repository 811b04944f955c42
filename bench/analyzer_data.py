#!/usr/bin/env python3
"""Writes the drift benchmark's CSVs: ROWS rows x 30 columns (25 numeric, 5 categorical), a
baseline and a window where 3 numeric columns and 1 categorical column moved. Generated in blocks
(memory stays small at 10M rows), fixed seeds, numpy only.

Usage: analyzer_data.py ROWS baseline.csv window.csv
"""

import sys

import numpy as np

BLOCK = 200_000
NUMERIC, CATEGORICAL = 25, 5
CATEGORIES = [np.array([f"c{i}_{v}" for v in range(6 + 2 * i)]) for i in range(CATEGORICAL)]
SHIFTED_NUMERIC = (0, 7, 13)
SHIFTED_CATEGORICAL = 2


def header():
    return ",".join([f"n{i}" for i in range(NUMERIC)] + [f"c{i}" for i in range(CATEGORICAL)])


def write(path, rows, seed, shifted):
    rng = np.random.default_rng(seed)
    means = np.linspace(-5, 5, NUMERIC)
    scales = np.linspace(0.5, 3, NUMERIC)
    with open(path, "w") as out:
        out.write(header() + "\n")
        done = 0
        while done < rows:
            n = min(BLOCK, rows - done)
            numbers = rng.normal(means, scales, size=(n, NUMERIC))
            if shifted:
                for column in SHIFTED_NUMERIC:
                    numbers[:, column] += scales[column]
            columns = [np.char.mod("%.6g", numbers[:, i]) for i in range(NUMERIC)]
            for i, values in enumerate(CATEGORIES):
                weights = np.linspace(1, 2, len(values))
                if shifted and i == SHIFTED_CATEGORICAL:
                    weights = weights[::-1] ** 3
                columns.append(rng.choice(values, size=n, p=weights / weights.sum()))
            out.write("\n".join(",".join(row) for row in zip(*columns)) + "\n")
            done += n


if __name__ == "__main__":
    rows = int(sys.argv[1])
    write(sys.argv[2], rows, 1, False)
    write(sys.argv[3], rows, 2, True)
