#!/usr/bin/env python3
"""`model_training_builtin` with `model_framework: xgboost` on the local target: SageMaker's
built-in XGBoost training, run by xgboost itself.

The server (src/targets/local/training.rs) runs `python xgboost_train.py <job.json>` with:

    {"job_name": "...", "train": [{"path", "name"}, ...], "validation": [...] | [],
     "content_type": "csv" | "libsvm", "hyperparameters": {...}, "max_runtime": 86400,
     "parent_pid": 123, "output": "<folder>"}

As SageMaker's XGBoost container reads its channels: CSV without a header row, the label in the
first column (an empty field is a missing value), or LIBSVM; every file of a channel, plain or
gzip. Hyperparameters are XGBoost's, with SageMaker's `num_round` (required) and
`early_stopping_rounds` (needs a validation channel). Writes `output/model.tar.gz` (the booster
as `xgboost-model`) and `metrics.json` (the final `train:<metric>` / `validation:<metric>`
values, as SageMaker's FinalMetricDataList). Progress lines on stdout as automl.py's; bad data
exits with status 2, naming the file, line and column.
"""

from array import array
import csv
import hashlib
import json
import math
import os
import time

import numpy as np
import xgboost as xgb
from trainer_common import DataError, Deadline, emit, main, open_text, save_model, write_json

# SageMaker's own hyperparameters, not XGBoost's.
SAGEMAKER_ONLY = {"num_round", "early_stopping_rounds", "csv_weights", "save_model_on_termination", "_tuning_objective_metric"}


def read_csv(files):
    # Flat arrays of doubles, not a list per row: 8 bytes a value instead of ~40.
    labels, values_read, width = array("d"), array("d"), None
    for file in files:
        name = file["name"]
        with open_text(file["path"]) as f:
            reader = csv.reader(f)
            try:
                for row in reader:
                    line = reader.line_num
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    if width is None:
                        width = len(row)
                        if width < 2:
                            raise DataError(f"{name}, line {line}: one column; the label comes first, then the features")
                    elif len(row) != width:
                        raise DataError(f"{name}, line {line}: {len(row)} fields where the first row has {width}")
                    values = []
                    for i, v in enumerate(row):
                        v = v.strip()
                        if not v:
                            if i == 0:
                                raise DataError(f"{name}, line {line}, column 1: no label")
                            values.append(math.nan)
                            continue
                        try:
                            values.append(float(v))
                        except ValueError:
                            what = "the label" if i == 0 else "a feature"
                            raise DataError(
                                f"{name}, line {line}, column {i + 1}: {v[:40]!r} is not a number ({what}; the CSV "
                                "has no header row and the label first, as SageMaker's XGBoost reads it)"
                            )
                    labels.append(values[0])
                    values_read.extend(values[1:])
            except (csv.Error, UnicodeDecodeError) as e:
                raise DataError(f"{name}, line {reader.line_num}: not readable as CSV: {e}")
    if not labels:
        raise DataError("the channel holds no rows")
    features = np.frombuffer(values_read, dtype=np.float64).reshape(len(labels), width - 1)
    return xgb.DMatrix(features, label=np.frombuffer(labels, dtype=np.float64))


def read_libsvm(files, directory):
    # xgboost reads LIBSVM text itself; the files are concatenated (gzip opened here).
    os.makedirs(directory, exist_ok=True)
    joined = os.path.join(directory, "channel.libsvm")
    with open(joined, "w") as out:
        for file in files:
            with open_text(file["path"]) as f:
                for line in f:
                    out.write(line if line.endswith("\n") else line + "\n")
    try:
        return xgb.DMatrix(joined + "?format=libsvm")
    except xgb.core.XGBoostError as e:
        raise DataError(f"not readable as LIBSVM: {str(e).splitlines()[0]}")


def channel(files, content_type, directory):
    return read_libsvm(files, directory) if content_type == "libsvm" else read_csv(files)


def number(value):
    """Hyperparameters arrive as strings (as SageMaker passes them) or JSON values."""
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


class Progress(xgb.callback.TrainingCallback):
    """A progress line every ~5 s: the round and the latest metrics."""

    def __init__(self, rounds):
        super().__init__()
        self.rounds, self.last = rounds, time.monotonic()

    def after_iteration(self, model, epoch, evals_log):
        if time.monotonic() - self.last >= 5:
            self.last = time.monotonic()
            emit(event="round", round=epoch + 1, of=self.rounds, metrics=latest(evals_log))
        return False


def latest(evals_log):
    return {f"{data}:{metric}": values[-1] for data, metrics in evals_log.items() for metric, values in metrics.items()}


def train_one(job, hyper, dtrain, evals, folder, deadline_at, extra_metric=None):
    """One training job: the booster saved as `<folder>/output/model.tar.gz`; returns its
    summary (SageMaker's DescribeTrainingJob fields we can fill)."""
    started = time.monotonic()
    if "num_round" not in hyper:
        raise DataError("algo_hyperparamaters has no num_round, which SageMaker's XGBoost requires")
    rounds = int(hyper["num_round"])
    early = hyper.get("early_stopping_rounds")
    if early is not None and len(evals) < 2:
        raise DataError("early_stopping_rounds needs validation_data")
    params = {k: v for k, v in hyper.items() if k not in SAGEMAKER_ONLY}
    params.setdefault("nthread", os.cpu_count() or 1)
    if extra_metric is not None:
        # As SageMaker's XGBoost adds the tuning objective's metric to what it evaluates.
        given = params.get("eval_metric", [])
        given = [given] if isinstance(given, str) else list(given)
        if extra_metric not in given:
            params["eval_metric"] = given + [extra_metric]
    log = {}
    deadline = Deadline(deadline_at, job.get("parent_pid"))
    try:
        booster = xgb.train(
            params, dtrain, num_boost_round=rounds, evals=evals, evals_result=log,
            early_stopping_rounds=int(early) if early is not None else None,
            callbacks=[deadline, Progress(rounds)], verbose_eval=False,
        )
    except xgb.core.XGBoostError as e:
        # A bad hyperparameter (xgboost names it) is the request's fault, not a crash.
        raise DataError(f"xgboost refused the hyperparameters: {str(e).splitlines()[0]}")
    save_model(booster, os.path.join(folder, "output", "model.tar.gz"))
    return {
        "FinalMetricDataList": [{"MetricName": k, "Value": v} for k, v in latest(log).items()],
        "Rounds": booster.num_boosted_rounds(),
        "BestIteration": getattr(booster, "best_iteration", None) if early is not None else None,
        "StoppedByRuntimeLimit": deadline.hit,
        "TrainingTimeInSeconds": round(time.monotonic() - started, 3),
    }


def sample(ranges, rng):
    """One draw from `hyperparamaters_ranges` (linear scale, as the solution passes no scaling)."""
    drawn = {}
    for name, (kind, bounds) in sorted(ranges.items()):
        if kind == "continuous":
            drawn[name] = float(rng.uniform(bounds[0], bounds[1]))
        elif kind == "integer":
            drawn[name] = int(rng.integers(int(bounds[0]), int(bounds[1]) + 1))
        else:
            drawn[name] = bounds[int(rng.integers(0, len(bounds)))]
    return drawn


def grid(ranges):
    """Every combination of categorical ranges, in order (SageMaker's Grid strategy)."""
    combos = [{}]
    for name, (kind, values) in sorted(ranges.items()):
        if kind != "categorical":
            raise DataError(f"strategy Grid takes categorical ranges only; `{name}` is {kind}")
        combos = [dict(c, **{name: v}) for c in combos for v in values]
    return combos


def tune(job, static, dtrain, evals, started):
    t = job["tuning"]
    objective = t["objective_metric"]
    data, _, metric = objective.partition(":")
    names = [name for _, name in evals]
    if data not in names or not metric:
        raise DataError(
            f"tuner_configs objective_metric_name {objective!r} is not `<data>:<metric>` with data one of "
            f"{', '.join(names)} (validation needs validation_data)"
        )
    maximize = t["objective_type"] != "Minimize"
    if t["strategy"] == "Grid":
        draws = grid(t["ranges"])
    else:
        rng = np.random.default_rng(t["seed"])
        draws = [sample(t["ranges"], rng) for _ in range(t["max_jobs"])]
    out = job["output"]
    summaries = []
    for i, tuned in enumerate(draws):
        digest = hashlib.sha256(json.dumps(tuned, sort_keys=True).encode()).hexdigest()[:8]
        name = f"{job['job_name']}-{i + 1:03d}-{digest}"
        hyper = dict(static, **{k: number(v) if isinstance(v, str) else v for k, v in tuned.items()})
        summary = train_one(job, hyper, dtrain, evals, os.path.join(out, name),
                            time.monotonic() + job["max_runtime"], extra_metric=metric)
        value = next((m["Value"] for m in summary["FinalMetricDataList"] if m["MetricName"] == objective), None)
        summaries.append({
            "TrainingJobName": name,
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {k: str(v) for k, v in tuned.items()},
            "FinalHyperParameterTuningJobObjectiveMetric": {
                "Type": "Maximize" if maximize else "Minimize", "MetricName": objective, "Value": value,
            },
            "ObjectiveStatus": "Succeeded" if value is not None else "Failed",
            "ModelArtifact": f"{name}/output/model.tar.gz",
            "FinalMetricDataList": summary["FinalMetricDataList"],
            "TrainingTimeInSeconds": summary["TrainingTimeInSeconds"],
        })
        emit(event="tuning_job", number=i + 1, of=len(draws), name=name, metric=objective, value=value)
    scored = [s for s in summaries if s["ObjectiveStatus"] == "Succeeded"]
    if not scored:
        raise DataError(f"no training job reported {objective}")
    # Best first; ties go to the earlier job (sorted is stable).
    scored.sort(key=lambda s: (-1 if maximize else 1) * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    result = {
        "HyperParameterTuningJobName": job["job_name"],
        "HyperParameterTuningJobStatus": "Completed",
        "Strategy": t["strategy"],
        # Bayesian and Hyperband search run as seeded random search here.
        "StrategyRun": "Grid" if t["strategy"] == "Grid" else "Random",
        "BestTrainingJob": scored[0],
        "TrainingJobSummaries": scored + [s for s in summaries if s not in scored],
        "TrainingJobStatusCounters": {"Completed": len(summaries)},
        "TuningTimeInSeconds": round(time.monotonic() - started, 3),
    }
    os.makedirs(os.path.join(out, job["job_name"]), exist_ok=True)
    write_json(os.path.join(out, job["job_name"], "tuning.json"), result)
    emit(event="tuned", best=scored[0]["TrainingJobName"], metric=objective,
         value=scored[0]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], jobs=len(summaries))


def run(job):
    started = time.monotonic()
    static = {k: number(v) for k, v in job["hyperparameters"].items()}
    out = job["output"]
    dtrain = channel(job["train"], job["content_type"], os.path.join(out, "..", "train"))
    evals = [(dtrain, "train")]
    if job["validation"]:
        evals.append((channel(job["validation"], job["content_type"], os.path.join(out, "..", "validation")), "validation"))
    emit(event="channels", train_rows=dtrain.num_row(), features=dtrain.num_col(),
         validation_rows=evals[1][0].num_row() if len(evals) > 1 else 0)
    if job.get("tuning"):
        return tune(job, static, dtrain, evals, started)
    summary = train_one(job, static, dtrain, evals, out, started + job["max_runtime"])
    metrics = dict(TrainingJobName=job["job_name"], HyperParameters=job["hyperparameters"], **summary)
    write_json(os.path.join(out, "metrics.json"), metrics)
    emit(event="trained", rounds=metrics["Rounds"], seconds=metrics["TrainingTimeInSeconds"],
         metrics={m["MetricName"]: m["Value"] for m in metrics["FinalMetricDataList"]})


if __name__ == "__main__":
    main(run)
