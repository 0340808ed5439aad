"""Host overhead per call: every ``pyimg.ops`` function and ``pyimg.nn`` module beside its stock
counterpart on tiny tensors (1, 16, 4, 4), where the kernels' own work is negligible and what
is left is the time around them (Python checks, backend choice, parameter preparation,
dispatch). One thread, the CPU. Each case in three modes: "eval" (no grad, modules in eval
mode), "eval+grad" (modules in eval mode, autograd recording, the inputs and parameters
requiring grad: fine-tuning around a frozen BatchNorm, a feature or perceptual-loss network
whose input requires grad) and "train" (modules in train mode, autograd recording); then the
zoo's SR models at small sizes (ESPCN x2 on 64x64, SRResNet x4 on 32x32, batch 1, no grad),
pyimg's modules against the same model rebuilt from stock modules with the same weights.

Goal: pyimg at most 1.25x stock per call (plus 2 us where pyimg does strictly more in one
call, a fused epilogue), and the models at least as fast as stock.

    python benchmarks/overhead.py --label after --out benchmarks/results
    python benchmarks/overhead.py --mode eval+grad --only Conv2dBNAct ResidualBlock

Timing: ``torch.utils.benchmark.Timer.blocked_autorange`` (per-call mean of each block, the
median over blocks), the pyimg and stock variants of a case alternating over ``--rounds``
rounds, the lowest median kept (other load on the machine only ever adds time).
"""

import argparse
import datetime
import os
import pathlib
import platform
import re
import subprocess
import sys

# pyimg is imported from this checkout (built in place, not installed).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.benchmark import Timer

import pyimg
from pyimg import nn as pnn

SHAPE = (1, 16, 4, 4)
CHANNELS = SHAPE[1]
# mode: (modules in training mode / batch statistics, autograd recording with inputs that
# require grad)
MODES = {"eval": (False, False), "eval+grad": (False, True), "train": (True, True)}


def _tensor(*shape, grad=False):
    return torch.randn(*shape).requires_grad_(grad)


class StockResidual(nn.Module):
    """x + bn2(conv2(prelu(bn1(conv1(x))))) from stock modules."""

    def __init__(self, block: pnn.ResidualBlock):
        super().__init__()
        self.conv1, self.bn1, self.prelu = _stock_conv(block.conv1), block.bn1, block.prelu
        self.conv2, self.bn2 = _stock_conv(block.conv2), block.bn2

    def forward(self, x):
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


def _stock_conv(conv: nn.Conv2d) -> nn.Conv2d:
    stock = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                      conv.padding_mode)
    stock.load_state_dict(conv.state_dict())
    return stock


def stock_model(module: nn.Module) -> nn.Module:
    """module with every pyimg.nn module replaced by the stock modules it stands for (same
    weights); the rest shared."""
    if isinstance(module, pnn.ResidualBlock):
        return StockResidual(module)
    if isinstance(module, pnn.UpsampleBlock):
        return nn.Sequential(_stock_conv(module.conv), nn.PixelShuffle(module.scale),
                             module.prelu)
    if type(module) is pnn.Conv2d:
        return _stock_conv(module)
    if type(module) is pnn.PixelShuffle:
        return nn.PixelShuffle(module.upscale_factor)
    for name, child in module.named_children():
        setattr(module, name, stock_model(child))
    return module


def _modules(training: bool, grad: bool | None = None):
    """(name, stock module, pyimg module, inputs) for every pyimg.nn module; both modules hold
    the same weights. The inputs require grad when ``grad`` (by default when training)."""
    grad = training if grad is None else grad
    c = CHANNELS
    conv = nn.Conv2d(c, c, 3, padding=1)
    bn, prelu = nn.BatchNorm2d(c), nn.PReLU()
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
    block = pnn.ResidualBlock(c)
    # Fine-tuning's usual case: BatchNorm frozen (eval, no gradient), the convolutions trained.
    frozen_bn = _clone(bn).requires_grad_(False)
    frozen_block = _clone(block)
    frozen_block.bn1.requires_grad_(False)
    frozen_block.bn2.requires_grad_(False)
    upsample = pnn.UpsampleBlock(c // 4, scale=2)
    x = _tensor(*SHAPE, grad=grad)
    x_up = _tensor(1, c // 4, 4, 4, grad=grad)
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    pooled, indices = F.max_pool2d(x.detach(), 2, return_indices=True)
    pooled.requires_grad_(grad)
    residual = _tensor(*SHAPE)
    cases = [
        ("Conv2d 3x3", conv, pnn.Conv2d(c, c, 3, padding=1), (x,)),
        ("Conv2dBNAct (PReLU)", nn.Sequential(conv, bn, prelu),
         pnn.Conv2dBNAct.from_modules(conv, bn, prelu), (x,)),
        ("Conv2dBNAct (PReLU, frozen BN)", nn.Sequential(conv, frozen_bn, prelu),
         pnn.Conv2dBNAct.from_modules(conv, frozen_bn, prelu), (x,)),
        ("BatchNormPReLU", nn.Sequential(bn, prelu), pnn.BatchNormPReLU.from_modules(bn, prelu),
         (x,)),
        ("BatchNormAdd", _AddAfter(bn), _copy_into(pnn.BatchNormAdd(c), bn), (x, residual)),
        ("PixelShuffle x2", nn.PixelShuffle(2), pnn.PixelShuffle(2), (x,)),
        ("PixelShuffleAct x2 (PReLU)", nn.Sequential(nn.PixelShuffle(2), prelu),
         pnn.PixelShuffleAct.from_modules(nn.PixelShuffle(2), prelu), (x,)),
        ("PixelUnshuffle x2", nn.PixelUnshuffle(2), pnn.PixelUnshuffle(2), (x,)),
        ("MaxPool2d 2 (indices)", pool, pnn.MaxPool2d(2, return_indices=True), (x,)),
        ("MaxUnpool2d 2", unpool, pnn.MaxUnpool2d(2), (pooled, indices)),
        ("ResidualBlock", StockResidual(block), block, (x,)),
        ("ResidualBlock (frozen BN)", StockResidual(frozen_block), frozen_block, (x,)),
        ("UpsampleBlock x2", stock_model(_clone(upsample)), upsample, (x_up,)),
    ]
    for _, stock, mine, _ in cases:
        stock.train(training)
        mine.train(training)
    return [(name, stock, mine, inputs) for name, stock, mine, inputs in cases]


class _AddAfter(nn.Module):
    def __init__(self, bn):
        super().__init__()
        self.bn = bn

    def forward(self, x, residual):
        return self.bn(x) + residual


def _copy_into(target: nn.Module, source: nn.Module) -> nn.Module:
    target.load_state_dict(source.state_dict())
    return target


def _clone(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module)


def _functions(training: bool, grad: bool | None = None):
    """(name, stock call, pyimg call) for every pyimg.ops function; batch norm with batch
    statistics when ``training``, the tensor arguments requiring grad when ``grad`` (by
    default when training)."""
    grad = training if grad is None else grad
    c = CHANNELS
    x = _tensor(*SHAPE, grad=grad)
    weight = _tensor(c, c, 3, 3, grad=grad)
    depthwise = _tensor(c, 1, 3, 3, grad=grad)
    bias = _tensor(c, grad=grad)
    mean, var = torch.zeros(c), torch.ones(c)
    gamma, beta = _tensor(c, grad=grad), _tensor(c, grad=grad)
    alpha = torch.full((1,), 0.25).requires_grad_(grad)
    residual = _tensor(*SHAPE)
    pooled, indices = F.max_pool2d(x.detach(), 2, return_indices=True)
    pooled.requires_grad_(grad)
    ops = pyimg.ops
    return [
        ("pixel_shuffle", lambda: F.pixel_shuffle(x, 2), lambda: ops.pixel_shuffle(x, 2)),
        ("pixel_unshuffle", lambda: F.pixel_unshuffle(x, 2), lambda: ops.pixel_unshuffle(x, 2)),
        ("conv2d 3x3", lambda: F.conv2d(x, weight, bias, 1, 1),
         lambda: ops.conv2d(x, weight, bias, 1, 1)),
        ("dilated_conv2d 3x3 d2", lambda: F.conv2d(x, weight, bias, 1, 2, 2),
         lambda: ops.dilated_conv2d(x, weight, bias, 2, 2)),
        ("conv2d 3x3 padding='same'", lambda: F.conv2d(x, weight, bias, 1, "same"),
         lambda: ops.conv2d(x, weight, bias, 1, "same")),
        ("conv2d 3x3 depthwise d2", lambda: F.conv2d(x, depthwise, bias, 1, 2, 2, c),
         lambda: ops.conv2d(x, depthwise, bias, 1, 2, 2, c)),
        ("batch_norm_prelu", lambda: F.prelu(F.batch_norm(x, mean, var, gamma, beta, training),
                                             alpha),
         lambda: ops.batch_norm_prelu(x, mean, var, gamma, beta, alpha, training)),
        ("batch_norm_add", lambda: F.batch_norm(x, mean, var, gamma, beta, training) + residual,
         lambda: ops.batch_norm_add(x, residual, mean, var, gamma, beta, training)),
        ("max_pool2d_with_indices", lambda: F.max_pool2d(x, 2, return_indices=True),
         lambda: ops.max_pool2d_with_indices(x, 2)),
        ("max_unpool2d", lambda: F.max_unpool2d(pooled, indices, 2),
         lambda: ops.max_unpool2d(pooled, indices, 2)),
    ]


def _time(fn, min_run_time: float) -> float:
    """Per-call microseconds: median of blocked_autorange's per-call block means."""
    fn()
    m = Timer(stmt="fn()", globals={"fn": fn}, num_threads=1).blocked_autorange(
        min_run_time=min_run_time)
    return m.median * 1e6


def _pair(stock, mine, rounds: int, min_run_time: float) -> tuple[float, float]:
    best_stock = best_mine = float("inf")
    for _ in range(rounds):
        best_stock = min(best_stock, _time(stock, min_run_time))
        best_mine = min(best_mine, _time(mine, min_run_time))
    return best_stock, best_mine


def _model_cases():
    espcn = pyimg.models.ESPCN(upscale_factor=2).eval()
    srresnet = pyimg.models.SRResNet(upscale_factor=4).eval()
    with torch.no_grad():
        for m in srresnet.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    return [("ESPCN x2, 1x1x64x64", espcn, torch.randn(1, 1, 64, 64)),
            ("SRResNet x4, 1x3x32x32", srresnet, torch.randn(1, 3, 32, 32))]


def run(rounds: int, min_run_time: float, modes=tuple(MODES), only=()):
    """The table's rows for the given modes (the models run in "eval"); ``only``: substrings,
    one of which a case's name must contain."""
    rows = []

    def wanted(name):
        return not only or any(part in name for part in only)

    for mode in modes:
        training, grad = MODES[mode]
        with torch.set_grad_enabled(grad):
            for name, stock, mine in _functions(training, grad):
                if wanted(name):
                    rows.append(("ops", f"pyimg.ops.{name}", mode,
                                 *_pair(stock, mine, rounds, min_run_time)))
                    print(*rows[-1], flush=True)
            for name, stock, mine, inputs in _modules(training, grad):
                if wanted(name):
                    rows.append(("nn", f"pyimg.nn.{name}", mode,
                                 *_pair(lambda s=stock, i=inputs: s(*i),
                                        lambda m=mine, i=inputs: m(*i), rounds, min_run_time)))
                    print(*rows[-1], flush=True)
    if "eval" not in modes:
        return rows
    with torch.no_grad():
        for name, model, x in _model_cases():
            if not wanted(name):
                continue
            stock = stock_model(_clone(model)).eval()
            torch.testing.assert_close(stock(x), model(x), rtol=1e-4, atol=1e-4)
            rows.append(("model", name, "eval",
                         *_pair(lambda s=stock, x=x: s(x), lambda m=model, x=x: m(x), rounds,
                                min_run_time * 4)))
            print(*rows[-1], flush=True)
    return rows


def _cpu_name() -> str:
    from pyimg.bench.environment import cpu_name

    return cpu_name()


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True,
                              cwd=pathlib.Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(rows, label: str, cases: str = "all") -> str:
    load = "/".join(f"{v:.2f}" for v in os.getloadavg())
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Host overhead per call ({label})",
        "",
        f"device: {_cpu_name()}, 1 thread; torch {torch.__version__}; Python "
        f"{platform.python_version()}; pyimg at {_commit()}; {date}; load average {load} "
        "(1/5/15 min) at the end",
        "",
        f"Tiny tensors {SHAPE}; per-call time in us (the best of each variant's block "
        "medians); ratio = pyimg / stock (goal: at most 1.25, +2 us for a fused epilogue). "
        f"Cases: {cases}.",
        "",
        "| kind | call | mode | stock us | pyimg us | pyimg / stock |",
        "|---|---|---|---:|---:|---:|",
    ]
    for kind, name, mode, stock, mine in rows:
        lines.append(f"| {kind} | {name} | {mode} | {stock:.1f} | {mine:.1f} | "
                     f"{mine / stock:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="current", help="names the results file")
    parser.add_argument("--out", type=pathlib.Path, help="folder for the markdown table")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=0.1,
                        help="seconds per timed variant per round")
    parser.add_argument("--mode", nargs="+", choices=tuple(MODES), default=tuple(MODES),
                        help="the modes to time (default: all)")
    parser.add_argument("--only", nargs="+", default=(), metavar="SUBSTRING",
                        help="time only the cases whose name contains one of these")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cases = " ".join(args.mode) + ("" if not args.only else
                                   "; names containing " + ", ".join(map(repr, args.only)))
    text = report(run(args.rounds, args.min_run_time, args.mode, args.only), args.label, cases)
    print(text)
    if args.out:
        slug = re.sub(r"[^a-z0-9]+", "-", _cpu_name().lower()).strip("-")
        path = args.out / f"overhead_{args.label}_{slug}.md"
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
