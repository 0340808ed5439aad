"""`pyimg bench`: latency of ops and whole models against stock PyTorch and torch.compile.

    pyimg bench ops [OP ...] [--shape "1x48x270x480 r4 fp16 CL"] [--quick]
    pyimg bench models [MODEL | file.py:factory ...] [--task segmentation] [--dtype fp16]
                       [--batch 1 8] [--size 256 512x256] [--layout nchw cl]
                       [--mode inference train] [--weights FILE.safetensors]
    pyimg bench compare OLD.json NEW.json

Each run prints a table and writes markdown, CSV, JSON and a PNG plot to --out;
--compare OLD.json prints what got faster or slower since an earlier run.
"""

import argparse
from pathlib import Path


def _timing_settings(args):
    from pyimg.bench import DEFAULT, QUICK, Settings

    base = QUICK if args.quick else DEFAULT
    overrides = {k: v for k, v in (("warmup_s", args.warmup_s),
                                   ("seconds_per_variant", args.seconds_per_variant),
                                   ("min_samples", args.min_samples),
                                   ("rounds", args.rounds)) if v is not None}
    return Settings(**{**base.__dict__, **overrides})


def _options(args):
    from pyimg.bench import RunOptions

    return RunOptions(device=args.device, threads=args.threads, quick=args.quick,
                      compile=not args.no_compile, settings=_timing_settings(args),
                      out_dir=args.out, name=args.name, plot=not args.no_plot,
                      compare_with=args.compare, threshold=args.threshold,
                      budget_s=args.budget_s)


def _failed(report) -> int:
    """Exit status 1 when a pyimg variant failed: a broken kernel must not pass silently."""
    return int(any(r.error and (r.role == "pyimg" or r.variant == "-") for r in report.rows))


def run_ops(args) -> int:
    from pyimg.bench import run_ops as run

    return _failed(run(args.ops, _options(args), preset=args.preset, shapes=args.shape,
                       backends=args.backends, reuse_memory=args.reuse_memory,
                       suite_dir=args.suite_dir))


def run_models(args) -> int:
    from pyimg.bench import run_models as run

    return _failed(run(args.models, _options(args), tasks=args.task, weights=args.weights,
                       model_kwargs=args.model_kwargs, dtypes=args.dtype, batches=args.batch,
                       sizes=args.size, layouts=args.layout, modes=args.mode,
                       variants=args.variants, channels=args.channels))


def run_compare(args) -> int:
    from pyimg.bench.compare import compare as changes_between
    from pyimg.bench.compare import comparison_table, verdict_counts
    from pyimg.bench.report import load_rows

    changes = changes_between(load_rows(args.old), load_rows(args.new), args.threshold)
    print(comparison_table(changes))
    print(f"\n{args.new} against {args.old}: {verdict_counts(changes)}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu or cuda[:N] (default: cuda when present)")
    parser.add_argument("--threads", type=int,
                        help="CPU threads for torch (default: torch's own choice)")
    parser.add_argument("--quick", action="store_true",
                        help="the short preset: fewer cases, shorter timing")
    parser.add_argument("--no-compile", action="store_true",
                        help="leave out the torch.compile variants")
    parser.add_argument("--out", type=Path, default=Path("bench_results"),
                        help="folder for the .md, .csv, .json and .png (default: %(default)s)")
    parser.add_argument("--name", help="file name stem (default: ops / the op / models, then "
                                       "the preset and the device)")
    parser.add_argument("--no-plot", action="store_true", help="write no PNG")
    parser.add_argument("--compare", type=Path, metavar="OLD.json",
                        help="print what got faster or slower since this earlier run")
    parser.add_argument("--threshold", type=float, default=0.05,
                        help="smallest relative change --compare reports (default: %(default)s; "
                             "larger when the runs' spread says so)")
    parser.add_argument("--budget-s", type=float,
                        help="start no new case after this many seconds (the report says "
                             "which were left out)")
    timing = parser.add_argument_group("timing (defaults from the preset)")
    timing.add_argument("--warmup-s", type=float, help="warm-up seconds per variant")
    timing.add_argument("--seconds-per-variant", type=float,
                        help="timed seconds per variant")
    timing.add_argument("--min-samples", type=int, help="timed calls per variant, at least")
    timing.add_argument("--rounds", type=int, help="interleaved rounds")


def add_parser(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench", help="latency of ops and models against stock PyTorch and torch.compile",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = bench.add_subparsers(dest="bench_command", required=True, metavar="WHAT")

    ops = commands.add_parser("ops", help="every op x every backend here, against stock")
    ops.add_argument("ops", nargs="*", metavar="OP",
                     help="op benchmarks to run (default: every benchmarks/bench_<op>.py)")
    ops.add_argument("--shape", action="append", default=[], metavar="CASE",
                     help="a case instead of the presets, e.g. '1x48x270x480 r4 fp16 CL' "
                          "(repeatable; one OP only)")
    ops.add_argument("--preset", help="a suite's named case list (default, quick, sweep...)")
    ops.add_argument("--backends", nargs="+", metavar="BACKEND",
                     help="pyimg backends to time (default: each that runs here)")
    ops.add_argument("--reuse-memory", action="store_true",
                     help="CPU: reuse freed pages for fresh outputs (glibc mallopt), timing "
                          "kernels without the page-fault floor of a fresh mmap")
    ops.add_argument("--suite-dir", type=Path,
                     help="folder of bench_<op>.py files (default: the checkout's benchmarks/)")
    _common(ops)
    ops.set_defaults(run=run_ops)

    models = commands.add_parser("models", help="whole models: stock, pyimg, converted, "
                                                "compiled")
    models.add_argument("models", nargs="*", metavar="MODEL",
                        help="zoo names or file.py:factory (default: every zoo model)")
    models.add_argument("--task", nargs="+",
                        help="zoo models of these tasks (super-resolution, segmentation, ...)")
    models.add_argument("--weights", type=Path, help=".safetensors state dict for the model")
    models.add_argument("--model-kwargs", metavar="JSON",
                        help="constructor arguments, e.g. '{\"upscale_factor\": 2}'")
    models.add_argument("--dtype", nargs="+", help="fp32 (default), fp16, bf16")
    models.add_argument("--batch", nargs="+", type=int, help="batch sizes (default: 1)")
    models.add_argument("--size", nargs="+",
                        help="input sizes, 256 or HxW (default: per task, 128 for SR)")
    models.add_argument("--layout", nargs="+", choices=("nchw", "cl"),
                        help="memory formats (default: nchw)")
    models.add_argument("--mode", nargs="+", choices=("inference", "train"),
                        help="inference (default) and/or a training step")
    models.add_argument("--variants", nargs="+",
                        help="variants to time (default: every one that applies)")
    models.add_argument("--channels", type=int,
                        help="input channels of a file.py:factory model (default: 3)")
    _common(models)
    models.set_defaults(run=run_models)

    compare = commands.add_parser("compare", help="what got faster or slower between two runs")
    compare.add_argument("old", type=Path, metavar="OLD.json")
    compare.add_argument("new", type=Path, metavar="NEW.json")
    compare.add_argument("--threshold", type=float, default=0.05,
                         help="smallest relative change reported (default: %(default)s)")
    compare.set_defaults(run=run_compare)
