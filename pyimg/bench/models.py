"""``pyimg bench models``: whole models side by side. Variants of one model:

- ``stock``: its modules as stock PyTorch runs them (pyimg's forced to the ``torch`` backend);
- ``pyimg``: as built, on pyimg's kernels (when it holds pyimg modules: every zoo model);
- ``pyimg converted``: after ``pyimg.convert`` (when that replaces anything: fused conv + BN
  + activation and the like);
- ``<each> compiled``: torch.compile of each of those.

Over dtype, batch, input size, memory format, and inference or a training step.
"""

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pyimg.bench import runner, timer, user_model, zoo
from pyimg.bench.environment import environment
from pyimg.bench.report import Report
from pyimg.bench.results import COMPILED, PYIMG, STOCK, Variant
from pyimg.bench.suite import SHORT_DTYPE, on_backend, parse_dtype
from pyimg.conversion import convert_with_report

VARIANTS = ("stock", "pyimg", "pyimg converted", "stock compiled", "pyimg compiled",
            "pyimg converted compiled")
INFERENCE, TRAIN = "inference", "train step"
QUICK_MODELS = ("SRResNet", "SegNet")  # the SR and the segmentation model richest in pyimg ops
_QUICK_CPU_SIDE = 64

MODELS_NOTE = (
    "stock: the model's modules on stock PyTorch ops (pyimg.use_backend('torch')); pyimg: on "
    "pyimg's kernels; pyimg converted: after pyimg.convert (run in the case's mode, so "
    "batch-norm folding applies to inference only); compiled: torch.compile(model) of each. "
    "inference: under torch.no_grad, eval mode, weights in the case's dtype. train step: "
    "zero_grad, forward, MSE loss against a fixed random target, backward, SGD step; fp16/bf16 "
    "train under torch.autocast with fp32 weights. fps: images per second; MP/s: megapixels "
    "of the output image per second (of the input where the output is not an image); "
    "TFLOP/s: torch.utils.flop_counter's count of one stock forward (x3 for a train step).")


@dataclass(frozen=True)
class ModelCase:
    reference: str  # zoo name or file.py:factory
    display: str
    kwargs_json: str | None
    weights: Path | None
    batch: int
    size: tuple[int, int]
    dtype: torch.dtype
    channels_last: bool
    mode: str
    channels: int  # a file model's input channels

    @property
    def name(self) -> str:
        layout = "CL" if self.channels_last else "NCHW"
        return f"b{self.batch} {self.size[0]}x{self.size[1]} {SHORT_DTYPE[self.dtype]} {layout}"


def parse_size(text: str) -> tuple[int, int]:
    parts = str(text).lower().split("x")
    try:
        size = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else None
    except ValueError:
        size = None
    if size is None or min(size) < 1:
        raise ValueError(f"bad --size {text!r}: write a side (256) or HxW (256x512)")
    return size


def _first_tensor(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    values = output.values() if isinstance(output, dict) else output
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise ValueError(f"the model returned {type(output).__name__} holding no tensor")


def _has_pyimg_modules(model: nn.Module) -> bool:
    return any(type(m).__module__.startswith("pyimg.") for m in model.modules())


def _inputs(case: ModelCase, model: nn.Module, device: torch.device, dtype: torch.dtype):
    if user_model.is_file_reference(case.reference):
        memory_format = torch.channels_last if case.channels_last else torch.contiguous_format
        g = torch.Generator(device).manual_seed(0)
        return (torch.rand(case.batch, case.channels, *case.size, device=device, dtype=dtype,
                           generator=g).contiguous(memory_format=memory_format),)
    return zoo.example_inputs(model, user_model.parse_kwargs(case.kwargs_json), case.batch,
                              case.size, dtype, device, case.channels_last)


def _inference(module: nn.Module, inputs):
    def run():
        with torch.no_grad():
            return module(*inputs)

    return run


def _train_step(module: nn.Module, parameters, inputs, autocast: torch.dtype | None):
    optimizer = torch.optim.SGD(parameters, lr=1e-6, momentum=0.9)
    device_type = inputs[0].device.type
    target = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, autocast or torch.float32, enabled=autocast is not None):
            output = _first_tensor(module(*inputs)).float()
        if not target:
            target.append(torch.rand_like(output))
        F.mse_loss(output, target[0]).backward()
        optimizer.step()

    return step


def _work(model: nn.Module, inputs) -> tuple[float | None, int]:
    """Megapixels per call (the output image's, else the input's) and one forward's FLOPs,
    from one stock forward."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        output = _first_tensor(on_backend("torch", model)(*inputs))
    image = output if output.dim() == 4 else inputs[0] if inputs[0].dim() == 4 else None
    megapixels = None if image is None else image.shape[0] * image.shape[2] * image.shape[3] / 1e6
    return megapixels, counter.get_total_flops()


def build_variants(case: ModelCase, device: torch.device, selected: Sequence[str],
                   compile: bool) -> list[Variant]:
    kwargs = user_model.parse_kwargs(case.kwargs_json)
    model = user_model.build(case.reference, kwargs)
    if case.weights is not None:
        user_model.load_weights(model, case.weights, case.display)
    train = case.mode == TRAIN
    low_precision_train = train and case.dtype != torch.float32
    weight_dtype = torch.float32 if low_precision_train else case.dtype
    memory_format = torch.channels_last if case.channels_last else torch.preserve_format
    model = model.to(device=device, dtype=weight_dtype, memory_format=memory_format)
    model.train(train)
    inputs = _inputs(case, model, device, case.dtype if not train else weight_dtype)
    megapixels, flops = _work(model, inputs)

    modules = [("stock", model, "torch")]
    if _has_pyimg_modules(model):
        modules.append(("pyimg", model, None))
    converted, conversion = convert_with_report(model)
    if conversion.fused or conversion.swapped:
        modules.append(("pyimg converted", converted, None))
    variants = []
    for name, module, backend in modules:
        versions = [(name, module)]
        if compile:
            versions.append((f"{name} compiled", torch.compile(module)))
        for version_name, version in versions:
            if version_name not in selected:
                continue
            if train:
                fn = _train_step(version, list(module.parameters()), inputs,
                                 case.dtype if low_precision_train else None)
            else:
                fn = _inference(version, inputs)
            role = {"stock": STOCK, "stock compiled": COMPILED}.get(version_name, PYIMG)
            variants.append(Variant(version_name, on_backend(backend, fn), case.mode, role,
                                    flops=flops * (3 if train else 1), images=case.batch,
                                    megapixels=megapixels))
    return variants


def _resolve_models(names: Sequence[str], tasks: Sequence[str] | None, quick: bool) -> list[str]:
    if names and tasks:
        raise ValueError("name models or --task, not both")
    if tasks:
        return zoo.models_of(tasks)
    if names:
        return [user_model.checked_file_reference(n) if user_model.is_file_reference(n)
                else zoo.canonical_name(n) for n in names]
    return list(QUICK_MODELS) if quick else zoo.models.list_models()


def _sizes(reference: str, sizes, quick: bool, device: torch.device) -> list[tuple[int, int]]:
    if sizes:
        return [parse_size(s) for s in sizes]
    if quick and device.type == "cpu":
        return [(_QUICK_CPU_SIDE, _QUICK_CPU_SIDE)]
    if user_model.is_file_reference(reference):
        return [(256, 256)]
    return [zoo.default_size(reference)]


def run_models(models: Sequence[str] = (), options: runner.RunOptions | None = None,
               *, tasks: Sequence[str] | None = None, weights: Path | None = None,
               model_kwargs: str | None = None, dtypes: Sequence[str] | None = None,
               batches: Sequence[int] | None = None, sizes: Sequence[str] | None = None,
               layouts: Sequence[str] | None = None, modes: Sequence[str] | None = None,
               variants: Sequence[str] | None = None, channels: int | None = None) -> Report:
    """Benchmark models (zoo names or file.py:factory; default: the zoo, or four of it with
    options.quick) over every combination of dtypes, batches, sizes, layouts ('nchw', 'cl')
    and modes ('inference', 'train'), and write the report."""
    options = options or runner.RunOptions()
    device = runner.resolve_device(options.device, options.threads)
    quick = options.quick
    references = _resolve_models(models, tasks, quick)
    if weights is not None and len(references) != 1:
        raise ValueError("--weights needs exactly one model")
    if weights is not None and not Path(weights).is_file():
        raise OSError(f"--weights: no such file {weights}")
    user_model.parse_kwargs(model_kwargs)  # a bad JSON fails before any timing
    gpu_quick = quick and device.type == "cuda"
    dtype_list = [parse_dtype(d) for d in dtypes or (["fp16"] if gpu_quick else ["fp32"])]
    batch_list = list(batches or [1])
    if any(b < 1 for b in batch_list):
        raise ValueError(f"--batch must be at least 1, not {batch_list}")
    layout_list = list(layouts or (["cl"] if gpu_quick else ["nchw"]))
    unknown = [v for v in layout_list if v not in ("nchw", "cl")]
    if unknown:
        raise ValueError(f"unknown layout(s) {unknown}; expected nchw or cl")
    mode_names = {"inference": INFERENCE, "train": TRAIN}
    unknown = [m for m in modes or () if m not in mode_names]
    if unknown:
        raise ValueError(f"unknown mode(s) {unknown}; expected inference or train")
    mode_list = [mode_names[m] for m in modes or ["inference"]]
    selected = list(variants or VARIANTS)
    unknown = [v for v in selected if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; expected some of {list(VARIANTS)}")
    if channels is not None and channels < 1:
        raise ValueError(f"--channels must be at least 1, not {channels}")

    settings = options.timer_settings()
    env = environment(device)
    report = Report("models", f"pyimg bench models{' (quick)' if quick else ''}", env,
                    {"compile": options.compile, **asdict(settings)},
                    [timer.method_note(device, settings), MODELS_NOTE])
    jobs = []
    for reference in references:
        display = user_model.display_name(reference)
        for mode, dtype, batch, size, layout in itertools.product(
                mode_list, dtype_list, batch_list, _sizes(reference, sizes, quick, device),
                layout_list):
            case = ModelCase(reference, display, model_kwargs, weights, batch, size, dtype,
                             layout == "cl", mode, channels or 3)
            jobs.append(runner.Job(display, case.name,
                                   lambda c=case: build_variants(c, device, selected,
                                                                 options.compile),
                                   flush_l2=False))
    stem = f"{options.name or 'models'}{'_quick' if quick else ''}_{env.slug}"
    return runner.run(report, jobs, device, options, stem)
