"""What the local trainers share (the server writes this file beside the trainer it runs):
progress lines, bad-data errors and exit statuses, gzip sniffing, the runtime limit, and
writing models and summaries."""

import gzip
import io
import json
import os
import sys
import tarfile
import time

import xgboost as xgb

NICENESS = 10


class DataError(Exception):
    """Bad input data: exit status 2, the message names where."""


def emit(**event):
    """One progress line; the server turns it into a pipeline event."""
    print(json.dumps(event), flush=True)


def open_text(path):
    """A data file as text, gzip or not (SageMaker's CompressionType, sniffed)."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gzipped else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


class Deadline(xgb.callback.TrainingCallback):
    """Stops boosting once the time is up (`at`, a time.monotonic() value); exits when the server
    that started the job is gone (a kill -9 leaves no one to read the outputs; the job runs again
    from the start where the server's job queue hands it next)."""

    def __init__(self, at, parent_pid):
        super().__init__()
        self.at, self.parent_pid, self.hit = at, parent_pid, False

    def after_iteration(self, model, epoch, evals_log):
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            sys.exit("the server that started this job is gone")
        self.hit = time.monotonic() >= self.at
        return self.hit


def save_model(booster, tar_gz):
    """The booster as `xgboost-model` (XGBoost JSON) in a model.tar.gz, as SageMaker packs it."""
    os.makedirs(os.path.dirname(tar_gz), exist_ok=True)
    model = tar_gz + ".xgboost-model.json"
    booster.save_model(model)
    with tarfile.open(tar_gz, "w:gz") as tar:
        tar.add(model, arcname="xgboost-model")
    os.remove(model)


def write_json(path, value):
    """Written whole or not at all: the summary's presence says the job finished."""
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=1, allow_nan=False, default=float)
    os.replace(path + ".tmp", path)


def main(run):
    """`python <trainer> <job.json>`: runs `run(job)`; bad data exits 2 with the message."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} <job.json>")
    # Below the server's own priority: training uses every core, and the endpoints this process
    # serves beside it keep answering first.
    os.nice(NICENESS)
    with open(sys.argv[1]) as f:
        job = json.load(f)
    try:
        run(job)
    except DataError as e:
        print(str(e), file=sys.stderr, flush=True)
        sys.exit(2)
