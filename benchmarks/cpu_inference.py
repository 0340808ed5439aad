"""Whole-model CPU inference: pyimg.inference.optimize_for_inference beside stock eager
PyTorch, torch.compile with freezing and onnxruntime, in one run, providers interleaved.

    python benchmarks/cpu_inference.py [--quick] [--cases espcn_x2,...] [--batches 1,8]
        [--out DIR]

Models: the zoo's ESPCN x2 (1x360x640 luminance -> 720x1280) and x4 (1x270x480), a
modified-SRResNet-style x4 net (no BatchNorm) and a compact SRVGG-style x4 net (per-channel
PReLU) on 3x135x240 (tests/inference/reference_nets.py), the zoo's SRResNet (with
BatchNorm) on 135x240 and, at batch 1, on 256x256, SegNet and U-Net on 256x256. The zoo
models run with random weights (and random BatchNorm statistics): speed does not depend on
them.

Providers, each fed an fp32 batch and timed from that input to its output, no autograd:
* eager: the network on stock torch.nn modules, NCHW fp32 (the baseline);
* eager_cl: the same in channels_last (input given channels_last);
* compile_freezing: torch.compile of eager_cl with torch._inductor.config.freezing = True
  (inductor's oneDNN weight prepacking and conv+post-op fusion), and compile_freezing_bf16
  on the stock network in bf16 (input converted inside the timed call);
* onnxruntime: the stock network exported to ONNX (opset 17), CPU execution provider with
  intra-op threads = torch's thread count, all graph optimizations;
* pyimg / pyimg_bf16: optimize_for_inference(model, dtype=float32 / bfloat16), the zoo model
  itself for zoo rows (the stock network for the two reference nets); input NCHW fp32,
  output returned in it; pyimg_compiled: torch.compile of the fp32 optimized model.

Timing (pyimg bench's timer): after warm-up, interleaved rounds of calls of every provider
(so every provider sees the same background load; in a new random order each round, so that
no provider always runs right after another's spinning threads), each provider's calls
filling an equal share of the case's time budget (3 calls at least, 40 at most); p25 and
p50 per provider over its calls.
--threads 1 --cpu-time times each call by the calling thread's CPU time instead: the work
each provider does, which other processes' load hardly changes. The load of other processes
(cores' worth of CPU time, from /proc/stat) is recorded per case. Writes
cpu_inference_<device>.md and .csv to --out (cpu_inference_1thread_cpu_time_<device> with
--cpu-time), merged with the rows of an earlier run for the cases this run leaves out.
"""

import argparse
import csv
import gc
import io
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# pyimg from this checkout (built in place), and the reference networks from its tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch
from inference.reference_nets import (
    MSRResNetStyle,
    SRVGGStyle,
    randomize_batch_norm,
    to_stock,
)

from pyimg import models
from pyimg.atomic import write_atomically
from pyimg.bench import timer
from pyimg.bench.environment import Environment, environment
from pyimg.bench.tables import markdown_table, number
from pyimg.inference import native_bf16_missing, optimize_for_inference

OP = "cpu_inference"
BASELINES = ("eager", "compile_freezing", "onnxruntime")


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], torch.nn.Module]
    shape: tuple[int, int, int]  # C, H, W of one image
    zoo: bool  # the pyimg providers run the zoo model (else the stock network)
    budget_s: float  # timing budget of one (case, batch)
    # pyimg_compiled too (U-Net's tile-size search in forward takes dynamo minutes to trace)
    compile_pyimg: bool = True
    batches: tuple[int, ...] = (1, 8)  # those of --batches it runs


CASES = (
    Case("espcn_x2", lambda: models.ESPCN(upscale_factor=2), (1, 360, 640), True, 20),
    Case("espcn_x4", lambda: models.ESPCN(upscale_factor=4), (1, 270, 480), True, 20),
    Case("msrresnet_x4", MSRResNetStyle, (3, 135, 240), False, 40),
    Case("srvgg_x4", SRVGGStyle, (3, 135, 240), False, 30),
    Case("srresnet_x4", lambda: models.SRResNet(upscale_factor=4), (3, 135, 240), True, 40),
    # batch 8 at 256x256 (1024x1024 outputs) took the eight providers past 24 GB
    Case("srresnet_x4_256", lambda: models.SRResNet(upscale_factor=4), (3, 256, 256), True, 60,
         batches=(1,)),
    Case("segnet", models.SegNet, (3, 256, 256), True, 60),
    Case("unet", models.UNet, (1, 256, 256), True, 60, compile_pyimg=False),
)


def _onnx_model(stock: torch.nn.Module, x: torch.Tensor) -> bytes:
    """The TorchScript-based exporter's model, or the dynamo-based one where the first fails
    (stock max_unpool2d without an output size does not trace)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dynamo in (False, True):
            buffer = io.BytesIO()
            try:
                torch.onnx.export(stock, (x,), buffer, dynamo=dynamo, opset_version=18,
                                  input_names=["x"])
                return buffer.getvalue()
            except Exception as error:  # the other exporter may still work
                if dynamo:
                    raise
                print(f"  TorchScript ONNX export failed ({type(error).__name__}); trying "
                      "the dynamo exporter", flush=True)
    raise AssertionError("unreachable")


def _onnxruntime_session(stock: torch.nn.Module, x: torch.Tensor):
    import onnxruntime

    model = _onnx_model(stock, x)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _compiled(model: torch.nn.Module, example: torch.Tensor):
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    torch._dynamo.reset()
    compiled = torch.compile(model)
    with torch.no_grad():
        compiled(example)
    return compiled


def providers(case: Case, batch: int, include_bf16: bool,
              reuse_memory: bool) -> dict[str, Callable[[], object]]:
    """The timed calls of one (case, batch), each closing over its own model and input."""
    torch.manual_seed(0)
    model = randomize_batch_norm(case.build().eval())
    stock = to_stock(model).eval() if case.zoo else model
    x = torch.rand(batch, *case.shape)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    stock_cl = to_stock(model).eval().to(memory_format=torch.channels_last) if case.zoo \
        else case.build().eval().to(memory_format=torch.channels_last)
    stock_cl.load_state_dict(stock.state_dict())
    calls: dict[str, Callable[[], object]] = {}
    calls["eager"] = lambda: stock(x)
    calls["eager_cl"] = lambda: stock_cl(x_cl)
    compiled = _compiled(stock_cl, x_cl)
    calls["compile_freezing"] = lambda: compiled(x_cl)
    session = _onnxruntime_session(stock, x)
    feed = {session.get_inputs()[0].name: x.numpy()}
    calls["onnxruntime"] = lambda: session.run(None, feed)
    fast = optimize_for_inference(model, dtype=torch.float32, reuse_memory=reuse_memory)
    calls["pyimg"] = lambda: fast(x)
    if case.compile_pyimg:
        torch._dynamo.reset()
        fast_compiled = torch.compile(fast)
        fast_compiled(x)
        calls["pyimg_compiled"] = lambda: fast_compiled(x)
    if include_bf16:
        stock_bf16 = to_stock(model).eval() if case.zoo else case.build().eval()
        stock_bf16.load_state_dict(stock.state_dict())
        stock_bf16 = stock_bf16.to(torch.bfloat16, memory_format=torch.channels_last)
        compiled_bf16 = _compiled(stock_bf16, x_cl.bfloat16())
        calls["compile_freezing_bf16"] = lambda: compiled_bf16(x_cl.bfloat16()).float()
        fast_bf16 = optimize_for_inference(model, dtype=torch.bfloat16,
                                           reuse_memory=reuse_memory)
        calls["pyimg_bf16"] = lambda: fast_bf16(x)
    return calls


def settings(calls: dict, budget_s: float, cpu_time: bool) -> timer.Settings:
    """Each provider's calls (3 to 40) filling an equal share of budget_s."""
    return timer.Settings(warmup_s=0.0, seconds_per_variant=budget_s / len(calls),
                          min_samples=3, max_samples=40, rounds=40,
                          clock="thread" if cpu_time else "wall", order="shuffle")


def run_case(case: Case, batch: int, include_bf16: bool, reuse_memory: bool, quick: bool,
             cpu_time: bool) -> list[dict]:
    label = f"{case.name} b{batch} {'x'.join(map(str, case.shape))}"
    print(f"{label}: building providers", flush=True)
    calls = providers(case, batch, include_bf16, reuse_memory)
    load_before = os.getloadavg()[0]
    with torch.no_grad():
        timed = timer.measure(calls, torch.device("cpu"),
                              settings(calls, case.budget_s / (4 if quick else 1), cpu_time))
    p50 = {name: stats.p50_us / 1e6 for name, stats in timed.stats.items()}
    rows = []
    for name in calls:
        stats = timed.stats.get(name)
        row = {"case": case.name, "batch": batch, "shape": "x".join(map(str, case.shape)),
               "provider": name, "calls": None, "p25_ms": None, "p50_ms": None,
               "frames_per_s": None, "other_load": timed.other_load,
               "load_avg_1m": load_before, "error": timed.errors.get(name)}
        if stats is not None:
            row.update(calls=stats.n, p25_ms=stats.p25_us / 1e3, p50_ms=p50[name] * 1e3,
                       frames_per_s=batch / p50[name])
        for base in BASELINES:
            row[f"x_{base}"] = p50[base] / p50[name] if base in p50 and name in p50 else None
        rows.append(row)
        print(f"  {name:22s} " + (row["error"] or
              f"p50 {row['p50_ms']:9.1f} ms  p25 {row['p25_ms']:9.1f} ms  " + "  ".join(
                  f"x {b} {number(row[f'x_{b}'], '.2f')}" for b in BASELINES)), flush=True)
    print(f"  other processes' load {number(timed.other_load, '.2f')} cores; load average "
          f"{load_before:.2f}", flush=True)
    del calls
    gc.collect()
    return rows


def _over(base: dict | None, row: dict) -> float | None:
    """base's p50 over row's (above 1: row is faster)."""
    if base is None or base["p50_ms"] is None or row["p50_ms"] is None:
        return None
    return base["p50_ms"] / row["p50_ms"]


def summary(rows: list[dict]) -> str:
    """Per (case, batch, pyimg provider): time and the ratio to each baseline; bf16 also
    against compile_freezing_bf16 and pyimg fp32."""
    by_key = {(r["case"], r["batch"], r["provider"]): r for r in rows}
    lines = []
    for r in rows:
        if not r["provider"].startswith("pyimg"):
            continue
        fp32 = by_key.get((r["case"], r["batch"], "pyimg"))
        bf16_base = by_key.get((r["case"], r["batch"], "compile_freezing_bf16"))
        lines.append([
            r["case"], str(r["batch"]), r["provider"], number(r["p50_ms"], ".1f"),
            number(r["frames_per_s"], ".1f"),
            *(number(r[f"x_{b}"], ".2f") for b in BASELINES),
            *(number(_over(base, r) if r["provider"] == "pyimg_bf16" else None, ".2f")
              for base in (bf16_base, fp32)),
            number(r["other_load"], ".2f"),
        ])
    headers = ["model", "batch", "provider", "p50 ms", "frames/s", "x eager (NCHW fp32)",
               "x compile+freezing (fp32)", "x onnxruntime (fp32)",
               "x compile+freezing bf16", "x pyimg fp32", "other load"]
    return markdown_table(headers, lines)


def all_rows(rows: list[dict]) -> str:
    headers = ["model", "batch", "input", "provider", "calls", "p25 ms", "p50 ms",
               "x eager", "x compile_freezing", "x onnxruntime", "other load", "load avg",
               "date", "error"]
    lines = [[r["case"], str(r["batch"]), r["shape"], r["provider"],
              number(r["calls"], ".0f"), number(r.get("p25_ms"), ".1f"),
              number(r["p50_ms"], ".1f"), *(number(r[f"x_{b}"], ".2f") for b in BASELINES),
              number(r["other_load"], ".2f"), number(r["load_avg_1m"], ".2f"), r["date"],
              r.get("error") or "-"] for r in rows]
    return markdown_table(headers, lines)


_NUMBERS = ("batch", "calls", "p25_ms", "p50_ms", "frames_per_s", "other_load", "load_avg_1m",
            *(f"x_{b}" for b in BASELINES))
FIELDS = ("case", "batch", "shape", "provider", *_NUMBERS[1:], "error", "device", "date",
          "torch")


def _earlier_rows(csv_path: Path) -> list[dict]:
    """The rows of an earlier run's csv (kept for the cases this run does not measure)."""
    if not csv_path.exists():
        return []
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row.setdefault("calls", row.pop("rounds", None))  # its name before pyimg bench
        for key in _NUMBERS:
            row[key] = None if row.get(key) in (None, "") else float(row[key])
        row["batch"] = int(row["batch"])
        row["error"] = row.get("error") or None
    return rows


def write(out_dir: Path, env: Environment, rows: list[dict], quick: bool,
          notes: list[str], name: str) -> Path:
    """The md and csv of this run's rows merged into the earlier run's (a row of this run
    replaces the earlier one of its case, batch and provider). Written after every case."""
    md_path = Path(out_dir) / f"{name}_{env.slug}.md"
    csv_path = md_path.with_suffix(".csv")
    dated = [{**row, "device": env.device, "date": env.date, "torch": env.torch} for row in rows]
    ours = {(r["case"], r["batch"], r["provider"]) for r in dated}
    merged = [r for r in _earlier_rows(csv_path)
              if (r["case"], r["batch"], r["provider"]) not in ours] + dated
    order = {c.name: i for i, c in enumerate(CASES)}
    merged.sort(key=lambda r: (order.get(r["case"], len(order)), r["batch"]))
    dates = sorted({r["date"] for r in merged})
    sections = [f"# CPU inference{' (quick)' * quick}", env.line(),
                f"rows measured on {', '.join(dates)}",
                f"torch threads: {torch.get_num_threads()}; native bf16: "
                f"{native_bf16_missing() or 'yes'}", *notes,
                "## Summary (p50 per call; ratios are the other provider's p50 over pyimg's)",
                summary(merged), "## All rows", all_rows(merged)]
    markdown = "\n\n".join(sections) + "\n"
    write_atomically(md_path, lambda f: f.write(markdown.encode()))
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(merged)
    write_atomically(csv_path, lambda f: f.write(table.getvalue().encode()))
    return md_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the time budget")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--no-reuse-memory", action="store_true",
                        help="optimize_for_inference(reuse_memory=False): no provider gets "
                        "pyimg's allocator")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch's and onnxruntime's intra-op threads")
    parser.add_argument("--cpu-time", action="store_true",
                        help="with --threads 1: time each call by the CPU time of the calling "
                        "thread, which other processes' load does not inflate")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time needs --threads 1 (the other threads' time is not counted)")
    torch.set_num_threads(args.threads)
    wanted = args.cases.split(",")
    unknown = set(wanted) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {[c.name for c in CASES]}")
    env = environment(torch.device("cpu"))
    print(env.line(), flush=True)
    include_bf16 = not args.no_bf16
    reuse = ("pyimg's reuse allocator (optimize_for_inference(reuse_memory=True)) is "
             "process-wide, so it also served the other providers' large allocations: the "
             "comparison is conservative for pyimg" if not args.no_reuse_memory else
             "run with --no-reuse-memory: every provider on the default allocator")
    name = OP + ("_1thread_cpu_time" if args.cpu_time else "")
    rows: list[dict] = []
    for case in CASES:
        if case.name not in wanted:
            continue
        for batch in map(int, args.batches.split(",")):
            if batch not in case.batches:
                continue
            rows += run_case(case, batch, include_bf16, not args.no_reuse_memory, args.quick,
                             args.cpu_time)
            notes = [reuse, f"load average after the last case: {os.getloadavg()[0]:.2f}"]
            if args.cpu_time:
                notes.insert(0, "times: CPU time of the calling thread, one thread per "
                             "provider")
            path = write(args.out, env, rows, args.quick, notes, name)
            print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
