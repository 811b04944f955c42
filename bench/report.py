"""Turns one benchmark run's raw results (bench/run writes them) into docs/BENCHMARKS.md.

Usage: report.py RESULTS_DIR > docs/BENCHMARKS.md
"""

import json
import os
import re
import statistics
import sys

CONNECTIONS = [1, 8, 32, 64]
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(path: str) -> dict:
    """Requests/s, p50/p99 in ms, and error counts from `wrk --latency` output."""
    text = open(path).read()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        latency[pct] = float(value) * UNITS[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:(.*)", text)
    result = {
        "rate": rate,
        "p50": latency.get("50"),
        "p99": latency.get("99"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }
    # bench/cpu.py's figures of the same cell, per request (absent in results from before them).
    cpu_path = path[: -len(".txt")] + ".cpu.json"
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    if os.path.exists(cpu_path) and requests:
        cpu = json.load(open(cpu_path))
        result["server_us"] = 1e6 * cpu["server_seconds"] / requests
        result["client_us"] = 1e6 * cpu["client_seconds"] / requests
        result["involuntary"] = cpu["server_involuntary"] / requests
        if "server_waiting_seconds" in cpu:
            result["waiting_us"] = 1e6 * cpu["server_waiting_seconds"] / requests
        p99 = histogram_p99(cpu["server_histogram"]) if cpu.get("server_histogram") else None
        if p99 is not None:
            result["server_p99"] = p99
    return result


def histogram_p99(histogram: dict):
    """The upper bound, in ms, of the bucket holding the 99th percentile of the busiest series
    (the route the cell loaded) of a cumulative Prometheus histogram's counts over the cell."""
    buckets = max(histogram.values(), key=lambda b: b.get("+Inf", 0))
    total = buckets.get("+Inf", 0)
    if not total:
        return None
    bounds = sorted((float(le), count) for le, count in buckets.items() if le != "+Inf")
    return next((1000 * le for le, count in bounds if count >= 0.99 * total), None)


def rounds(results: str, name: str, c: int) -> list:
    """The wrk results of every round of one cell (`NAME-rN-C.txt`), in round order; a run from
    before rounds (`NAME-C.txt`) is one round."""
    found = sorted(
        (int(m.group(1)), f) for f in os.listdir(results) if (m := re.fullmatch(rf"{re.escape(name)}-r(\d+)-{c}\.txt", f))
    )
    paths = [f for _, f in found] or [f"{name}-{c}.txt"]
    return [wrk(os.path.join(results, p)) for p in paths if os.path.exists(os.path.join(results, p))]


def median(values: list) -> float:
    return statistics.median(values)


def paired(numerators: list, denominators: list) -> str:
    """Median of the rounds' ratios, in per cent, with their range when there are several."""
    ratios = [100 * a["rate"] / b["rate"] for a, b in zip(numerators, denominators)]
    text = f"{median(ratios):.0f} %"
    return text + (f" ({min(ratios):.0f}-{max(ratios):.0f})" if len(ratios) > 1 else "")


def p99_spread(runs: list) -> str:
    """The p99's range over a cell's rounds, in brackets; nothing for one round."""
    if len(runs) < 2:
        return ""
    return f" ({ms(min(r['p99'] for r in runs))}-{ms(max(r['p99'] for r in runs))})"


def typical(runs: list) -> dict:
    """One figure per cell: the median rate, and the latencies of the run with that rate (the
    upper middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r["rate"])
    middle = dict(ordered[len(ordered) // 2])
    middle["rate"] = median([r["rate"] for r in runs])
    middle["non_2xx"] = sum(r["non_2xx"] for r in runs)
    middle["socket_errors"] = "; ".join(r["socket_errors"] for r in runs if r["socket_errors"])
    return middle


def cpu(runs: list, key: str):
    """The median over a cell's rounds of one per-request CPU figure; None without figures."""
    values = [r[key] for r in runs if key in r]
    return median(values) if values else None


def us(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def load(results: str, name: str):
    path = os.path.join(results, name)
    return json.load(open(path)) if os.path.exists(path) else None


def header(w, *columns: str) -> None:
    """A Markdown table's header row and separator."""
    w("| " + " | ".join(columns) + " |")
    w("|" + "---|" * len(columns))


def within(bound) -> str:
    """A histogram bucket's upper bound in ms, as a bound."""
    return "n/a" if bound is None else f"≤ {bound:g} ms"


def ms(value) -> str:
    return "n/a" if value is None else (f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms")


def mib(value: int) -> str:
    return f"{value / (1024 * 1024):,.0f} MiB"


def pinned_cpu(results: str) -> str:
    """The core bench/run pinned the custom algorithm to (`serving.algorithm_cpus`)."""
    path = os.path.join(results, "custom-pinned-cpu.txt")
    return open(path).read().strip() if os.path.exists(path) else "?"


def goals(results: str) -> list:
    """The figures the data-plane issue set goals for, each as (goal, measured, met) from this
    run's results; a goal whose cells did not run is left out."""
    out = []
    high = [c for c in CONNECTIONS if c >= 8]
    ratios, floors = [], []
    for c in high:
        ours_runs, floor_runs = rounds(results, "ours-rt", c), rounds(results, "healthz", c)
        peer_path = os.path.join(results, f"mlserver-rt-{c}.txt")
        if ours_runs and os.path.exists(peer_path):
            ratios.append((c, typical(ours_runs)["rate"] / wrk(peer_path)["rate"]))
        if ours_runs and floor_runs:
            floors.append((c, median([100 * a["rate"] / b["rate"] for a, b in zip(ours_runs, floor_runs)])))
    listed = lambda pairs, fmt: ", ".join(f"{fmt(v)} at {c}" for c, v in pairs)
    if ratios:
        out.append(("Real-time throughput at least 40× MLServer's at 8 connections and above, capture on",
                    listed(ratios, lambda v: f"{v:.1f}×"), all(v >= 40 for _, v in ratios)))
    eight = rounds(results, "ours-rt", 8)
    if eight:
        p99 = typical(eight)["p99"]
        out.append(("p99 under 2 ms at 8 connections (client and server sharing the 2 cores)",
                    f"{ms(p99)} (rounds: {', '.join(ms(r['p99']) for r in eight)})", p99 is not None and p99 < 2))
    if floors:
        out.append(("Invocations at least 80 % of our own `/healthz` floor at 8 connections and above",
                    listed(floors, lambda v: f"{v:.0f} %"), all(v >= 80 for _, v in floors)))
    speedups = []
    for size in ("1m", "10m"):
        ours, ref = load(results, f"batch-ours-{size}.json"), load(results, f"batch-pandas-{size}.json")
        if ours and ref:
            speedups.append((f"{ours['rows']:,} rows", ref["seconds"] / ours["seconds"]))
    if speedups:
        out.append(("Batch at least 2× xgboost + pandas end to end",
                    listed(speedups, lambda v: f"{v:.1f}×"), all(v >= 2 for _, v in speedups)))
    small, large = load(results, "batch-ours-1m.json"), load(results, "batch-ours-10m.json")
    if small and large:
        growth = 100 * (large["peak_rss_bytes"] - small["peak_rss_bytes"]) / small["peak_rss_bytes"]
        out.append(("Batch peak RSS within 10 % between 1M and 10M rows", f"{growth:+.1f} %", abs(growth) <= 10))
    # Both placements of the algorithm, each its own verdict: pinned as docs/OPERATIONS.md
    # advises for an algorithm like the fixture, and on the default settings.
    for name, placement in (("custom-pinned", f"the algorithm on CPU {pinned_cpu(results)} (`serving.algorithm_cpus`)"),
                            ("custom", "the algorithm on any CPU (the default)")):
        kept = []
        for c in (8, 32):
            direct_runs, proxied_runs = rounds(results, f"{name}-direct", c), rounds(results, f"{name}-proxied", c)
            if direct_runs and proxied_runs:
                kept.append((c, median([100 * a["rate"] / b["rate"] for a, b in zip(proxied_runs, direct_runs)])))
        if kept:
            out.append((f"A custom endpoint through us keeps at least 90 % of the algorithm's direct throughput, "
                        f"{placement}", listed(kept, lambda v: f"{v:.0f} %"), all(v >= 90 for _, v in kept)))
    inv = load(results, "invariant.json")
    if inv:
        total = inv["captured"] + inv["dropped"] + inv["sampled_out"]
        out.append(("Captured + dropped (+ sampled out) = served, exactly, after the load runs",
                    f"{total:,} of {inv['served']:,}", total == inv["served"]))
    return out


def main() -> None:
    results = sys.argv[1]
    machine = load(results, "machine.json")
    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("Written by `bench/run` (one command; see *Reproduce* below). Every figure in a table was")
    w("measured in the same run, on the same machine, with the same client, so the ratios are the")
    w("result; the absolute numbers move with the machine and what else it is doing.")
    w("")
    w(f"Run: {machine['date']} on {machine['cpu']} ({machine['cores']} cores, {machine['memory']}), "
      f"{machine['os']}. Ours: `mlops` {machine['ours']} (release build, `--no-default-features`). "
      f"Peer: MLServer {machine['mlserver']} with mlserver-xgboost, xgboost {machine['xgboost']}, "
      f"pandas {machine['pandas']}. Load client: {machine['wrk']}, {machine['duration']} per cell, "
      "sharing the cores with the server under test.")
    w("")
    costs = load(results, "machine-costs.json")
    if costs and "cross_core_round_trip_us" in costs:
        w("**What the machine charges** (bench/machine.py, at the start of the run; Python on both sides")
        w(f"of a one-byte ping-pong): waking a process asleep on the other core and being woken back, "
          f"{costs['cross_core_round_trip_us']:.1f} µs a round trip, against "
          f"{costs['same_core_round_trip_us']:.1f} µs between two processes on one core; the first write "
          f"to a page of new memory, {costs['new_page_us']:.2f} µs. On a virtual machine whose idle vCPUs "
          "halt to the host (no halt polling in the guest) a sleeping core is woken through the host, and "
          "the host backs a page when the guest first uses it; both cost more there than on bare metal. "
          "Every exchange with a process asleep on the other core pays the first (the 1-connection cells; "
          "the algorithm behind a proxied request), every page the page cache or a heap grows into the "
          "second.")
        w("")

    measured = goals(results)
    if measured:
        w("## Against the goals")
        w("")
        w("The goals the data-plane issue set for these tables, each checked against this run's figures")
        w("(the sections below hold them and how they were measured).")
        w("")
        header(w, "goal", "this run", "met")
        for goal, figure, met in measured:
            w(f"| {goal} | {figure} | {'yes' if met else '**no**'} |")
        w("")

    w("## Real-time inference")
    w("")
    w("The same XGBoost model (`binary:logistic`, 100 trees of depth 4, 30 features) behind each")
    w("server, one row per request, the first 1,000 rows of the batch data below cycled through in the")
    w("same order for both (one repeated row would let the processor learn every tree walk): ours")
    w("`POST /v1/endpoints/bench-endpoint/invocations` with a")
    w("`text/csv` row, capture on (every request captured, SageMaker's JSONL), bearer auth off")
    w("(`--dev`), default settings otherwise (metrics listener on, for the capture check below);")
    w("MLServer `POST /v2/models/bench/infer` with the V2 JSON body, `OMP_NUM_THREADS=1`,")
    w("`MLSERVER_PARALLEL_WORKERS=0` (its fair setting on 2 cores). The floor is our own `GET /healthz`")
    w("(HTTP, middleware and access log, no model). Ours and the floor run in alternating cells,")
    w(f"{machine.get('rounds', 1)} rounds per connection count: each figure of ours is the median of its rounds")
    w("(latencies those of the median run, our p99's range over the rounds in brackets), and")
    w("*invocations ÷ `/healthz`* the median of the rounds' paired ratios, their range in brackets (the")
    w("machine's speed drifts between cells minutes apart).")
    w("")
    header(
        w, "connections", "ours req/s", "ours p50 / p99", "MLServer req/s", "MLServer p50 / p99", "ours ÷ MLServer",
        "`/healthz` req/s (p99)", "invocations ÷ `/healthz`",
    )
    notes = []
    for c in CONNECTIONS:
        ours_runs, floor_runs = rounds(results, "ours-rt", c), rounds(results, "healthz", c)
        ours, floor = typical(ours_runs), typical(floor_runs)
        peer = wrk(os.path.join(results, f"mlserver-rt-{c}.txt"))
        for name, r in (("ours", ours), ("MLServer", peer), ("/healthz", floor)):
            if r["non_2xx"] or r["socket_errors"]:
                notes.append(f"{name} at {c} connections: {r['non_2xx']} non-2xx answers, socket errors {r['socket_errors'] or 'none'}")
        w(f"| {c} | {ours['rate']:,.0f} | {ms(ours['p50'])} / {ms(ours['p99'])}{p99_spread(ours_runs)} | {peer['rate']:,.0f} | "
          f"{ms(peer['p50'])} / {ms(peer['p99'])} | **{ours['rate'] / peer['rate']:.1f}×** | {floor['rate']:,.0f} ({ms(floor['p99'])}) | "
          f"{paired(ours_runs, floor_runs)} |")
    w("")
    for note in notes:
        w(f"- {note}")
    if notes:
        w("")

    w("**CPU per request**, from the same cells (bench/cpu.py: user + system time of the server")
    w("process, and of `wrk`, over the cell, divided by the requests it answered; medians of the")
    w("rounds). On 2 cores the client's share and the kernel's scheduling between client and server")
    w("are in every throughput above: these are what each request costs the server alone. *Preempted*:")
    w("the server's involuntary context switches per request (the kernel gave its core to another")
    w("thread; perf shows them on return from writing an answer, which wakes a `wrk` thread): while")
    w("a worker waits for its core again, the connections it holds wait too: one source of the p99")
    w("tail (the cells with the client on its own core, below, show what remains without it).")
    w("*Whole request*: `/healthz`'s server + client CPU per request ÷ the invocation's; with both")
    w("cores busy it is what *invocations ÷ `/healthz`* above measures. *Waiting for a core*: the")
    w("time per request the server's threads were ready to run while the kernel ran another thread")
    w("(the run-queue delay in `/proc/<pid>/task/<tid>/schedstat`; a lower bound: threads that ended")
    w("during the cell take theirs along). *Server's own p99*: from the server's")
    w("`mlops_http_request_duration_seconds` histogram over the cell, the bucket the 99th percentile")
    w("falls in (time from the parsed request to the answer handed to the connection; not the time")
    w("a request waits in its socket or for a core), beside `wrk`'s p99 of the table above.")
    w("")
    header(
        w, "connections", "invocation: server / client µs", "`/healthz`: server / client µs",
        "whole request: `/healthz` ÷ invocation", "MLServer: server / client µs", "MLServer server CPU ÷ ours",
        "preempted per request: invocation / `/healthz`", "waiting for a core µs: invocation / `/healthz`",
        "server's own p99: invocation / `/healthz`",
    )
    for c in CONNECTIONS:
        ours_runs, floor_runs = rounds(results, "ours-rt", c), rounds(results, "healthz", c)
        peer = [wrk(os.path.join(results, f"mlserver-rt-{c}.txt"))]
        ours_server, peer_server = cpu(ours_runs, "server_us"), cpu(peer, "server_us")
        share = f"{peer_server / ours_server:.0f}×" if ours_server and peer_server else "n/a"
        ours_client, floor_server, floor_client = (
            cpu(ours_runs, "client_us"), cpu(floor_runs, "server_us"), cpu(floor_runs, "client_us"))
        whole = ("n/a" if None in (ours_server, ours_client, floor_server, floor_client)
                 else f"{100 * (floor_server + floor_client) / (ours_server + ours_client):.0f} %")
        w(f"| {c} | {us(ours_server)} / {us(ours_client)} | {us(floor_server)} / {us(floor_client)} | {whole} | "
          f"{us(peer_server)} / {us(cpu(peer, 'client_us'))} | {share} | "
          f"{cpu(ours_runs, 'involuntary') or 0:.2f} / {cpu(floor_runs, 'involuntary') or 0:.2f} | "
          f"{us(cpu(ours_runs, 'waiting_us'))} / {us(cpu(floor_runs, 'waiting_us'))} | "
          f"{within(cpu(ours_runs, 'server_p99'))} / {within(cpu(floor_runs, 'server_p99'))} |")
    w("")

    if rounds(results, "nocapture-rt", CONNECTIONS[0]):
        w("**What capture costs.** A second server process, the same but with")
        w("`capture.sampling_percentage = 0` (it captures nothing; counting its invocations as sampled out")
        w("is all that is left), in cells alternating with the two above. Capture writes each")
        w("invocation's JSON line (its CSV body again, the answer and the metadata: about 1 KB here)")
        w("and then the files (written and fsynced per flush, then dropped from the page cache), on the")
        w("same two cores.")
        w("")
        header(
            w, "connections", "capture on req/s (p99)", "capture off req/s (p99)", "on ÷ off", "off ÷ `/healthz`",
            "server CPU µs: on / off",
        )
        for c in CONNECTIONS:
            on_runs, off_runs = rounds(results, "ours-rt", c), rounds(results, "nocapture-rt", c)
            floor_runs = rounds(results, "healthz", c)
            on, off = typical(on_runs), typical(off_runs)
            w(f"| {c} | {on['rate']:,.0f} ({ms(on['p99'])}) | {off['rate']:,.0f} ({ms(off['p99'])}) | "
              f"{paired(on_runs, off_runs)} | {paired(off_runs, floor_runs)} | "
              f"{us(cpu(on_runs, 'server_us'))} / {us(cpu(off_runs, 'server_us'))} |")
        w("")

    pinned, pinned_floor = rounds(results, "pinned-ours-rt", 8), rounds(results, "pinned-healthz", 8)
    if pinned and pinned_floor:
        ours, floor = typical(pinned), typical(pinned_floor)
        w("**The client on its own core.** The same pair at 8 connections, another server process on")
        w("one core only (so one runtime worker) and `wrk` on another with one thread, same rounds: no")
        w("sharing of cores between client and server, and one core for the server, which its own")
        w("background work (capture writes, the log) shares with the requests. p99 in brackets: its")
        w("range over the rounds.")
        w("")
        header(
            w, "connections", "ours req/s", "ours p50 / p99", "`/healthz` req/s", "`/healthz` p50 / p99",
            "invocations ÷ `/healthz`", "server CPU µs: invocation / `/healthz`",
        )
        w(f"| 8 | {ours['rate']:,.0f} | {ms(ours['p50'])} / {ms(ours['p99'])}{p99_spread(pinned)} | {floor['rate']:,.0f} | "
          f"{ms(floor['p50'])} / {ms(floor['p99'])}{p99_spread(pinned_floor)} | {paired(pinned, pinned_floor)} | "
          f"{us(cpu(pinned, 'server_us'))} / {us(cpu(pinned_floor, 'server_us'))} |")
        w("")

    inv = load(results, "invariant.json")
    if inv:
        holds = inv["captured"] + inv["dropped"] + inv["sampled_out"] == inv["served"]
        w("**Capture under load.** After all the runs above, the server's own count of successful")
        w(f"invocations (`mlops_invocations_total`) is {inv['served']:,}; its capture figures for the endpoint")
        w(f"(`GET /v1/endpoints/bench-endpoint`, `capture.this_replica`) are captured {inv['captured']:,} + dropped {inv['dropped']:,}"
          f" + sampled out {inv['sampled_out']:,} = {inv['captured'] + inv['dropped'] + inv['sampled_out']:,}"
          f" — {'equal, exactly' if holds else 'NOT EQUAL'}. {inv['written']:,} records were written to the"
          f" capture files after the last flush{' (all captured ones)' if inv['written'] == inv['captured'] else ''}.")
        w("")

    w("## Batch transform")
    w("")
    w("The same model over a CSV of 30 float columns (breast-cancer rows with 1 % noise), one")
    w("prediction per output line. Ours: a `byom_batch_builtin` pipeline on a fresh server process,")
    w("timed from the stage's `deploying` to its `deployed` event (model load, read, score, write);")
    w("peak RSS is the whole server process's (`VmHWM`; the binary allocates with mimalloc, on its")
    w("defaults: docs/OPERATIONS.md, Memory). Ours runs three times per size, each on a fresh")
    w("process; its time and peak are the medians, the peak's range in brackets. Reference: pandas")
    w("`read_csv` → `Booster.inplace_predict` (all cores) → `to_csv`, timed from reading to written")
    w("(imports excluded); peak RSS from `getrusage`.")
    w("")
    header(
        w, "rows", "input", "ours s", "ours rows/s", "ours peak RSS", "pandas + xgboost s", "rows/s", "peak RSS",
        "ours faster by",
    )
    for size in ("1m", "10m"):
        ours = load(results, f"batch-ours-{size}.json")
        ref = load(results, f"batch-pandas-{size}.json")
        if not ours:
            continue
        rows = ours["rows"]
        peak = mib(ours["peak_rss_bytes"])
        if len(ours.get("peak_rss_runs", [])) > 1:
            low, high = min(ours["peak_rss_runs"]), max(ours["peak_rss_runs"])
            peak += f" ({low / 2**20:.0f}-{high / 2**20:.0f})"
        cells = [f"{rows:,}", mib(ours["input_bytes"]), f"{ours['seconds']:.2f}", f"{rows / ours['seconds']:,.0f}",
                 peak]
        if ref:
            cells += [f"{ref['seconds']:.2f}", f"{ref['rows'] / ref['seconds']:,.0f}", mib(ref["peak_rss_bytes"]),
                      f"**{ref['seconds'] / ours['seconds']:.1f}×**"]
        else:
            cells += ["not run", "", "", ""]
        w("| " + " | ".join(cells) + " |")
    small, large = load(results, "batch-ours-1m.json"), load(results, "batch-ours-10m.json")
    if small and large:
        growth = 100 * (large["peak_rss_bytes"] - small["peak_rss_bytes"]) / small["peak_rss_bytes"]
        w("")
        if abs(growth) <= 10:
            verdict = "flat in the input's size: chunks of whole lines stream through"
        elif growth < 0:
            verdict = ("the larger input peaked lower: no growth with the input, but the two medians differ "
                       "by more than the 10 % the goal allows")
        else:
            verdict = "MORE than the 10 % the design allows: investigate"
        w(f"Our median peak RSS from {small['rows']:,} to {large['rows']:,} rows: {growth:+.1f} % ({verdict}).")
    w("")

    w("## Custom-algorithm proxy overhead")
    w("")
    w("The committed fixture algorithm (`tests/fixtures/algorithms/linear`: Python's standard")
    w("`ThreadingHTTPServer`, a linear model over the same 30-value CSV rows) built by")
    w("`byom_image_builder` and served by `byom_realtime_custom`, called directly on its port and")
    w("through our endpoint (auth, limits, proxy, capture on), in alternating cells, the same rounds")
    w("as above: rates are medians, *throughput kept* the median of the paired ratios (range).")
    w("Twice: on the default settings, where the kernel runs the algorithm's threads on either core,")
    w("and on a server with `serving.algorithm_cpus` naming the last core, so the algorithm and")
    w("everything it starts run there only (docs/OPERATIONS.md advises it for a Python algorithm")
    w("serving with threads: each hand-over of the GIL between threads on different cores wakes a")
    w("thread across cores, which this machine charges dearly, above).")
    w("")
    w("CPU per request is the whole stack's (our server and the algorithm's process, its child), as")
    w("above; through us it adds our hop.")
    w("")
    header(
        w, "algorithm on", "connections", "direct req/s (p99)", "through us req/s (p99)", "throughput kept",
        "CPU µs per request: direct / through us",
    )
    for name, placement in (("custom", "any core"), ("custom-pinned", f"core {pinned_cpu(results)}")):
        for c in (8, 32):
            direct_runs, proxied_runs = rounds(results, f"{name}-direct", c), rounds(results, f"{name}-proxied", c)
            if not direct_runs:
                continue
            direct, proxied = typical(direct_runs), typical(proxied_runs)
            w(f"| {placement} | {c} | {direct['rate']:,.0f} ({ms(direct['p99'])}) | "
              f"{proxied['rate']:,.0f} ({ms(proxied['p99'])}) | **{paired(proxied_runs, direct_runs)}** | "
              f"{us(cpu(direct_runs, 'server_us'))} / {us(cpu(proxied_runs, 'server_us'))} |")
    w("")
    w("## Reproduce")
    w("")
    w("```sh")
    w("bench/run            # BENCH_DURATION=10s BENCH_ROUNDS=3 BENCH_ROWS=1000000 by default")
    w("BENCH_ONLY=serving bench/run   # real-time, proxy and batch; keeps the other sections")
    w("```")
    w("")
    w("It installs `wrk` (Debian) when missing, MLServer and the reference libraries into")
    w("`~/.cache/mlops-venvs/bench` (pinned in `bench/requirements.txt`), builds the release binary,")
    w("generates the model and data under `~/.cache/mlops-bench` (about 3.5 GB with the 10M-row")
    w("file), runs everything above one after the other on loopback and rewrites this file. Raw")
    w("`wrk` outputs, each cell's CPU figures (`*.cpu.json`) and JSON results stay in")
    w("`~/.cache/mlops-bench/results`.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
