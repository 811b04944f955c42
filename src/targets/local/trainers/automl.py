#!/usr/bin/env python3
"""Local AutoML for `model_autopilot_training`: XGBoost candidates tuned on a hold-out split.

The server (src/targets/local/automl.rs) runs `python train.py <job.json>` with the job file:

    {"job_name": "...", "data": [{"path": "<csv file>", "name": "<asset key>"}, ...], "target": "<column>",
     "problem_type": null | "Regression" | "BinaryClassification" | "MulticlassClassification",
     "objective": null | "Accuracy" | "MSE" | "F1" | "F1macro" | "AUC",
     "max_candidates": 10, "max_runtime_per_job": 86400, "total_max_runtime": 2592000,
     "definitions_only": false, "seed": 0, "parent_pid": 123, "output": "<folder>"}

Every data file is CSV with a header row (as Autopilot requires), all with the same header, plain
or gzip. Features must be numbers (an empty field is a missing value); the target may be numbers
or labels. It writes under `output`:

    candidates/<candidate>/model.tar.gz   the candidate's booster as `xgboost-model` (XGBoost JSON)
    data/train.csv, data/validation.csv   the split it used, header row included
    result.json                           DescribeAutoMLJob-shaped summary, candidates best first

and prints one JSON object per line on stdout while it runs (the server turns them into the
pipeline's events). Bad data exits with status 2 and a message naming the file, line and column;
anything else that fails exits with 1.
"""

from array import array
import csv
import math
import os
import time

import numpy as np
import xgboost as xgb
from sklearn import metrics
from sklearn.model_selection import train_test_split
from trainer_common import DataError, Deadline, emit, main, open_text, save_model, write_json

PROBLEM_TYPES = ("Regression", "BinaryClassification", "MulticlassClassification")
# The objectives the solution accepts, by the problem types they apply to, and their direction.
OBJECTIVES = {
    "MSE": (("Regression",), "Minimize"),
    "Accuracy": (("BinaryClassification", "MulticlassClassification"), "Maximize"),
    "F1": (("BinaryClassification",), "Maximize"),
    "F1macro": (("BinaryClassification", "MulticlassClassification"), "Maximize"),
    "AUC": (("BinaryClassification",), "Maximize"),
}
# Autopilot's defaults when no objective is given.
DEFAULT_OBJECTIVE = {"Regression": "MSE", "BinaryClassification": "F1", "MulticlassClassification": "Accuracy"}
# An integer-valued numeric target with at most this many distinct values is a class label.
MAX_INFERRED_CLASSES = 20
MIN_ROWS = 20
VALIDATION_FRACTION = 0.2
MAX_ROUNDS = 500
EARLY_STOPPING_ROUNDS = 20


def read_data(files, target):
    """Feature matrix, target strings and feature names from every file; rows without a target
    value are dropped and counted."""
    # A flat array of doubles, not a list per row: 8 bytes a value instead of ~40.
    header, values_read, targets, dropped = None, array("d"), [], 0
    for file in files:
        name = file["name"]
        with open_text(file["path"]) as f:
            reader = csv.reader(f)
            try:
                this_header = next(reader)
            except StopIteration:
                continue  # an empty file adds nothing
            except (csv.Error, UnicodeDecodeError) as e:
                raise DataError(f"{name}, line 1: not readable as CSV: {e}")
            this_header = [h.strip() for h in this_header]
            if header is None:
                header = this_header
                if target not in header:
                    raise DataError(
                        f"{name}, line 1: target_attribute {target!r} is not a column of the header "
                        f"(columns: {', '.join(header)})"
                    )
                t = header.index(target)
                features = [h for i, h in enumerate(header) if i != t]
                if not features:
                    raise DataError(f"{name}, line 1: the data has no column besides the target")
            elif this_header != header:
                raise DataError(f"{name}, line 1: the header differs from the first file's")
            try:
                for row in reader:
                    line = reader.line_num
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    if len(row) != len(header):
                        raise DataError(f"{name}, line {line}: {len(row)} fields where the header has {len(header)}")
                    label = row[t].strip()
                    if not label:
                        dropped += 1
                        continue
                    values = []
                    for i, v in enumerate(row):
                        if i == t:
                            continue
                        v = v.strip()
                        if not v:
                            values.append(math.nan)
                            continue
                        try:
                            values.append(float(v))
                        except ValueError:
                            raise DataError(
                                f"{name}, line {line}, column {i + 1} ({header[i]!r}): {v[:40]!r} is not a number "
                                "(the local AutoML takes numeric features; encode categories as numbers)"
                            )
                    values_read.extend(values)
                    targets.append(label)
            except (csv.Error, UnicodeDecodeError) as e:
                raise DataError(f"{name}, line {reader.line_num}: not readable as CSV: {e}")
    if header is None:
        raise DataError("the training data holds no CSV header row")
    if len(targets) < MIN_ROWS:
        raise DataError(f"the training data has {len(targets)} rows with a target value; at least {MIN_ROWS} are needed")
    x = np.frombuffer(values_read, dtype=np.float64).reshape(len(targets), len(features))
    return x, targets, features, dropped


def as_number(label):
    try:
        value = float(label)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def resolve_problem(targets, problem_type):
    """The problem type (given or inferred) and, for classification, the labels in class order."""
    numbers = [as_number(t) for t in targets]
    numeric = all(n is not None for n in numbers)
    if problem_type == "Regression" or problem_type is None and numeric and not looks_like_classes(numbers):
        if not numeric:
            bad = next(t for t, n in zip(targets, numbers) if n is None)
            raise DataError(f"problem_type Regression needs a numeric target; it holds {bad[:40]!r}")
        return "Regression", None
    if numeric:
        labels = sorted(set(numbers))
        labels = [int(l) if l == int(l) else l for l in labels]
    else:
        labels = sorted(set(targets))
    inferred = "BinaryClassification" if len(labels) == 2 else "MulticlassClassification"
    if len(labels) < 2:
        raise DataError(f"the target has one value ({labels[0]!r}); classification needs two or more")
    if problem_type == "BinaryClassification" and len(labels) != 2:
        raise DataError(f"problem_type BinaryClassification, but the target has {len(labels)} values")
    return problem_type or inferred, labels


def looks_like_classes(numbers):
    distinct = set(numbers)
    return len(distinct) == 2 or (
        len(distinct) <= MAX_INFERRED_CLASSES and all(n == int(n) for n in distinct) and len(distinct) < len(numbers) / 2
    )


def encode(targets, labels):
    if labels is None:
        return np.asarray([float(t) for t in targets])
    index = {str(l): i for i, l in enumerate(labels)}
    numeric = all(isinstance(l, (int, float)) for l in labels)
    keys = [str(int(n) if n == int(n) else n) for n in map(float, targets)] if numeric else targets
    return np.asarray([index[k] for k in keys], dtype=np.float64)


def candidate_params(i, problem_type, classes, rng, threads, seed):
    """The first candidate is XGBoost's defaults; the others are drawn from the ranges
    Autopilot's XGBoost tuning covers (log scale for rates and regularisation)."""
    if i == 0:
        params = {"eta": 0.3, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0, "colsample_bytree": 1.0}
    else:
        params = {
            "eta": float(10 ** rng.uniform(-1.5, -0.5)),
            "max_depth": int(rng.integers(2, 11)),
            "min_child_weight": float(10 ** rng.uniform(-1, 1)),
            "subsample": float(rng.uniform(0.5, 1.0)),
            "colsample_bytree": float(rng.uniform(0.5, 1.0)),
            "lambda": float(10 ** rng.uniform(-2, 1)),
            "alpha": float(10 ** rng.uniform(-3, 0)),
        }
    if problem_type == "Regression":
        params.update(objective="reg:squarederror", eval_metric="rmse")
    elif problem_type == "BinaryClassification":
        params.update(objective="binary:logistic", eval_metric="logloss")
    else:
        params.update(objective="multi:softprob", eval_metric="mlogloss", num_class=classes)
    params.update(tree_method="hist", nthread=threads, seed=seed + i)
    return params


def scores(problem_type, y, predicted):
    """Every metric that applies, on the validation split (class 1 is the positive class)."""
    if problem_type == "Regression":
        mse = metrics.mean_squared_error(y, predicted)
        return {
            "MSE": mse,
            "RMSE": math.sqrt(mse),
            "MAE": metrics.mean_absolute_error(y, predicted),
            "R2": metrics.r2_score(y, predicted),
        }
    if problem_type == "BinaryClassification":
        labels = (predicted >= 0.5).astype(int)
        out = {
            "Accuracy": metrics.accuracy_score(y, labels),
            "F1": metrics.f1_score(y, labels, zero_division=0),
            "F1macro": metrics.f1_score(y, labels, average="macro", zero_division=0),
            "Precision": metrics.precision_score(y, labels, zero_division=0),
            "Recall": metrics.recall_score(y, labels, zero_division=0),
            "LogLoss": metrics.log_loss(y, np.clip(predicted, 1e-15, 1 - 1e-15), labels=[0, 1]),
        }
        if len(set(y)) == 2:  # else undefined; the split is stratified, so only with very few rows
            out["AUC"] = metrics.roc_auc_score(y, predicted)
        return out
    labels = predicted.argmax(axis=1)
    return {
        "Accuracy": metrics.accuracy_score(y, labels),
        "F1macro": metrics.f1_score(y, labels, average="macro", zero_division=0),
        "LogLoss": metrics.log_loss(y, predicted, labels=list(range(predicted.shape[1]))),
    }


def write_split(path, features, target, x, y, labels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([target] + features)
        for row, t in zip(x, y):
            label = labels[int(t)] if labels is not None else repr(float(t))
            writer.writerow([label] + ["" if math.isnan(v) else repr(float(v)) for v in row])


def run(job):
    started = time.monotonic()
    total_deadline = started + job["total_max_runtime"]
    x, targets, features, dropped = read_data(job["data"], job["target"])
    problem_type, labels = resolve_problem(targets, job.get("problem_type"))
    objective = job.get("objective") or DEFAULT_OBJECTIVE[problem_type]
    applies, direction = OBJECTIVES[objective]
    if problem_type not in applies:
        raise DataError(f"job_objective {objective} does not apply to {problem_type} (it applies to {', '.join(applies)})")
    y = encode(targets, labels)
    stratify = y if labels is not None else None
    if labels is not None:
        counts = np.bincount(y.astype(int))
        if counts.min() < 2:
            rare = labels[int(counts.argmin())]
            raise DataError(f"class {rare!r} has one row; every class needs two or more to be split for validation")
    x_train, x_valid, y_train, y_valid = train_test_split(
        x, y, test_size=VALIDATION_FRACTION, random_state=job["seed"], stratify=stratify
    )
    out = job["output"]
    write_split(os.path.join(out, "data", "train.csv"), features, job["target"], x_train, y_train, labels)
    write_split(os.path.join(out, "data", "validation.csv"), features, job["target"], x_valid, y_valid, labels)
    emit(
        event="data",
        problem_type=problem_type,
        objective=objective,
        rows=len(y),
        train_rows=len(y_train),
        validation_rows=len(y_valid),
        features=len(features),
        dropped_without_target=dropped,
    )

    rng = np.random.default_rng(job["seed"])
    threads = os.cpu_count() or 1
    classes = len(labels) if labels is not None else 0
    dtrain = xgb.DMatrix(x_train, label=y_train, feature_names=None)
    dvalid = xgb.DMatrix(x_valid, label=y_valid)
    candidates = []
    for i in range(job["max_candidates"]):
        params = candidate_params(i, problem_type, classes, rng, threads, job["seed"])
        name = f"{job['job_name']}-xgb-{i + 1:03d}"
        if job.get("definitions_only"):
            candidates.append({"CandidateName": name, "CandidateStatus": "NotStarted", "HyperParameters": params})
            continue
        now = time.monotonic()
        if now >= total_deadline:
            emit(event="stopped", reason="total_max_runtime reached", candidates=len(candidates))
            break
        deadline = Deadline(min(now + job["max_runtime_per_job"], total_deadline), job.get("parent_pid"))
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=MAX_ROUNDS,
            evals=[(dvalid, "validation")],
            early_stopping_rounds=EARLY_STOPPING_ROUNDS,
            callbacks=[deadline],
            verbose_eval=False,
        )
        # Keep the best rounds only, so the saved model predicts as it scored.
        best = getattr(booster, "best_iteration", None)
        if best is not None and best + 1 < booster.num_boosted_rounds():
            booster = booster[: best + 1]
        booster.set_attr(best_iteration=None, best_score=None)
        predicted = booster.predict(dvalid)
        candidate_scores = scores(problem_type, y_valid, predicted)
        if objective not in candidate_scores:
            raise DataError(f"the validation split holds one class only, so {objective} is undefined; add rows")
        value = candidate_scores[objective]
        save_model(booster, os.path.join(out, "candidates", name, "model.tar.gz"))
        candidate = {
            "CandidateName": name,
            "FinalAutoMLJobObjectiveMetric": {"Type": direction, "MetricName": objective, "Value": value},
            "ObjectiveStatus": "Succeeded",
            "CandidateStatus": "Completed",
            "CandidateProperties": {
                "CandidateMetrics": [
                    {"MetricName": k, "Value": v, "Set": "Validation"} for k, v in candidate_scores.items()
                ]
            },
            "HyperParameters": params,
            "Rounds": booster.num_boosted_rounds(),
            "StoppedByRuntimeLimit": deadline.hit,
            "TrainingSeconds": round(time.monotonic() - now, 3),
            "ModelFile": f"candidates/{name}/model.tar.gz",
        }
        candidates.append(candidate)
        emit(event="candidate", name=name, metric=objective, value=value, rounds=candidate["Rounds"],
             seconds=candidate["TrainingSeconds"], number=i + 1, of=job["max_candidates"])

    trained = [c for c in candidates if c.get("CandidateStatus") == "Completed"]
    sign = -1 if direction == "Minimize" else 1
    # Ties go to the earlier candidate (sorted is stable).
    trained.sort(key=lambda c: -sign * c["FinalAutoMLJobObjectiveMetric"]["Value"])
    result = {
        "AutoMLJobName": job["job_name"],
        "AutoMLJobStatus": "Completed",
        "AutoMLJobSecondaryStatus": "CandidateDefinitionsGenerated" if job.get("definitions_only") else "Completed",
        "ResolvedAttributes": {
            "AutoMLJobObjective": {"MetricName": objective},
            "ProblemType": problem_type,
        },
        "ProblemTypeInferred": job.get("problem_type") is None,
        "TargetAttribute": job["target"],
        "FeatureNames": features,
        "Labels": labels,
        "Rows": {"train": len(y_train), "validation": len(y_valid), "dropped_without_target": dropped},
        "Candidates": trained if trained else candidates,
    }
    if trained:
        result["BestCandidate"] = trained[0]
    elif not job.get("definitions_only"):
        raise RuntimeError("no candidate finished within total_max_runtime")
    write_json(os.path.join(out, "result.json"), result)
    emit(event="done", best=trained[0]["CandidateName"] if trained else None, candidates=len(candidates))


if __name__ == "__main__":
    main(run)
