"""The training loop: a recipe's task, data and optimizers, run for ``steps`` steps with
validation, logging and crash-safe checkpoints, resumable bit for bit on the CPU.

A run lives in a folder: ``config.yaml`` (the settings), ``last.pt`` (the full state:
models, optimizers, schedulers, gradient scalers, EMA, RNG states, the data position),
``best.pt`` and ``best.safetensors`` (at the best validation), ``last.safetensors`` (the
final weights, with what produced them in the metadata), ``log.csv`` and
``tensorboard/``. Starting a run in a folder that holds ``last.pt`` resumes it.
"""

import os
import random
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from pyimg.atomic import write_atomically
from pyimg.train import checkpoint as ckpt
from pyimg.train.config import dump_config, load_config
from pyimg.train.distributed import all_reduce_mean, barrier, init_world, unwrap, wrap
from pyimg.train.ema import EMA
from pyimg.train.fit import Fit
from pyimg.train.run_info import check_same_run, default_run_dir, machine
from pyimg.train.run_log import RunLog
from pyimg.train.schedule import build_scheduler
from pyimg.train.tasks import build_task
from pyimg.train.tasks.base import build_optimizer


@dataclass
class TrainResult:
    """What a run ended with; ``weights`` is None in the processes other than rank 0."""

    run_dir: Path
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    weights: Path | None = None
    wall_time_s: float = 0.0


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: this machine has no CUDA device")
    return device


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id; numpy and random follow it.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class Trainer:
    """One run of a recipe; see :func:`train`."""

    def __init__(self, config: dict, run_dir: Path, resume: Path | None, progress: bool,
                 command: str):
        self.config, self.run_dir, self.command = config, Path(run_dir), command
        if config["threads"]:
            torch.set_num_threads(int(config["threads"]))
        self.device = _device(config["device"])
        self.world = init_world(self.device.type)
        if self.world.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", self.world.local_rank)
            torch.cuda.set_device(self.device)
        self.total = int(config["steps"])
        self.batch = int(config["data"]["batch_size"])
        if self.batch % self.world.world_size:
            raise ValueError(f"data.batch_size {self.batch} (the global batch) must divide "
                             f"among {self.world.world_size} processes")
        state = self._find_state(resume)
        seed = int(config["seed"])
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        self.task = build_task(config)
        self._build(state)
        if state is None and self.world.distributed:
            torch.manual_seed(seed + 1 + self.world.rank)  # per-rank dropout, noise
        self.log = RunLog(self.run_dir, self.step, self.total, self.world.main, progress)
        if state is not None:
            self.log.message(f"resumed {self.run_dir} at step {self.step}")

    def _find_state(self, resume: Path | None) -> dict | None:
        if self.world.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_temporaries(self.run_dir)
        barrier(self.world)
        if self.world.main and not (self.run_dir / "config.yaml").exists():
            write_atomically(self.run_dir / "config.yaml",
                              lambda f: f.write(dump_config(self.config).encode()))
        path = Path(resume) if resume is not None else self.run_dir / "last.pt"
        if resume is None and not path.exists():
            return None
        state = ckpt.load_checkpoint(path)
        check_same_run(yaml.safe_load(state["config"]), self.config, path)
        return state

    def _build(self, state: dict | None) -> None:
        config, task = self.config, self.task
        for model in task.models.values():
            model.to(self.device)
            if config["channels_last"]:
                model.to(memory_format=torch.channels_last)
        task.setup(self.device)
        trained = task.trained_models()
        groups = task.optimizer_groups()
        self.optimizers = {
            name: build_optimizer([p for m in groups[name] for p in task.models[m].parameters()],
                                  cfg)
            for name, cfg in task.optimizer_configs().items()}
        self.schedulers = {name: build_scheduler(opt, self.total, config["schedule"])
                           for name, opt in self.optimizers.items()}
        decay = float(config["ema"])
        self.ema = EMA(task.models[task.main], decay) if decay else None
        self.step, self.elapsed, self.best = 0, 0.0, None
        if state is not None:
            self._load(state)
        for name in trained:
            model = wrap(task.models[name], self.world, self.device, config["sync_batchnorm"])
            task.models[name] = torch.compile(model) if config["compile"] else model
        self.fit = Fit(self.device, config["amp"], config["channels_last"], task.models,
                       groups, self.optimizers, config["clip_grad"])
        if state is not None:
            for name, scaler in self.fit.scalers.items():
                scaler.load_state_dict(state["scalers"][name])

    def _load(self, state: dict) -> None:
        for name, model in self.task.models.items():
            model.load_state_dict(state["models"][name])
        for group in ("optimizers", "schedulers"):
            for name, item in getattr(self, group).items():
                item.load_state_dict(state[group][name])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.task.load_state_dict(state["task"])
        ckpt.set_rng_state(state["rng"])
        self.step, self.elapsed, self.best = state["step"], state["elapsed"], state["best"]

    def _state(self) -> dict:
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "best": self.best,
            "config": dump_config(self.config),
            "models": {n: unwrap(m).state_dict() for n, m in self.task.models.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scalers": {n: s.state_dict() for n, s in self.fit.scalers.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "task": self.task.state_dict(),
            "rng": ckpt.rng_state(),
            "data": {"seed": int(self.config["seed"]), "position": self.step * self.batch},
        }

    def _loader(self) -> torch.utils.data.DataLoader:
        from pyimg.data.sampler import StepSampler

        dataset = self.task.train_dataset()
        seed = int(self.config["seed"])
        sampler = StepSampler(len(dataset), seed, self.step * self.batch, self.world.rank,
                              self.world.world_size)
        workers = int(self.config["data"]["workers"])
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.batch // self.world.world_size, sampler=sampler,
            num_workers=workers, pin_memory=self.device.type == "cuda", drop_last=True,
            worker_init_fn=_seed_worker, persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(seed + self.step))

    def eval_model(self) -> torch.nn.Module:
        """The weights validated and exported: the EMA's when enabled."""
        return self.ema.model if self.ema is not None else unwrap(self.task.models[self.task.main])

    def validate(self) -> dict[str, float]:
        model = self.eval_model()
        was_training = model.training
        model.eval()
        # Validation draws (pix2pix's test-time dropout) from its own fixed stream: the scores
        # repeat, and training's random state is the same whether or not a step validated.
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            metrics = self.task.validate(model, self.device)
        model.train(was_training)
        return metrics

    def _improved(self, metrics: dict[str, float]) -> bool:
        value = metrics.get(self.task.metric)
        if value is None:
            return False
        if self.best is None:
            return True
        better = value > self.best["value"] if self.task.metric_mode == "max" \
            else value < self.best["value"]
        return better

    def _weights_metadata(self, metrics: dict[str, float]) -> dict[str, str]:
        from pyimg import __version__

        meta = self.task.weights_metadata()
        meta.update({
            "recipe": str(self.config["name"]), "step": str(self.step),
            "command": self.command, "wall_time_s": f"{self.elapsed:.0f}",
            "machine": machine(), "torch": torch.__version__, "pyimg": __version__,
            "config": dump_config(self.config),
        })
        meta.update({k: f"{v:.4f}" for k, v in metrics.items()})
        return meta

    def _save_weights(self, path: Path, metrics: dict[str, float]) -> None:
        ckpt.save_weights(self.eval_model().state_dict(), path, self._weights_metadata(metrics))

    def run(self) -> TrainResult:
        config = self.config
        log_every, val_every = int(config["log_every"]), int(config["val_every"])
        checkpoint_every = int(config["checkpoint_every"])
        metrics: dict[str, float] = {}
        sums: dict[str, float] = {}
        count = 0
        started = time.monotonic()
        batches = iter(self._loader()) if self.step < self.total else iter(())
        while self.step < self.total:
            for model in self.task.models.values():
                model.train()
            values = self.task.training_step(next(batches), self.fit)
            for scheduler in self.schedulers.values():
                scheduler.step()
            if self.ema is not None:
                self.ema.update(unwrap(self.task.models[self.task.main]))
            self.step += 1
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
            self.log.advance(1, values)
            last = self.step == self.total
            if self.step % log_every == 0 or last:
                means = all_reduce_mean({k: v / count for k, v in sums.items()}, self.world)
                lr = next(iter(self.optimizers.values())).param_groups[0]["lr"]
                self.log.log(self.step, "train", {**means, "lr": lr})
                sums, count = {}, 0
            if (self.step % val_every == 0 or last) and self.world.main:
                metrics = self.validate()
                if metrics:
                    self.log.log(self.step, "val", metrics)
                if self._improved(metrics):
                    self.best = {"value": metrics[self.task.metric], "step": self.step}
                    ckpt.save_checkpoint(self._state(), self.run_dir / "best.pt")
                    self._save_weights(self.run_dir / "best.safetensors", metrics)
            now = time.monotonic()
            self.elapsed += now - started
            started = now
            if (self.step % checkpoint_every == 0 or last) and self.world.main:
                ckpt.save_checkpoint(self._state(), self.run_dir / "last.pt")
            if last:
                barrier(self.world)
        weights = self.run_dir / "last.safetensors"
        if self.world.main:
            if not metrics and self.step == self.total:
                metrics = self.validate()
            self._save_weights(weights, metrics)
        self.log.close()
        return TrainResult(self.run_dir, self.step, metrics,
                           weights if self.world.main else None, self.elapsed)


def train(recipe: str | os.PathLike, overrides=(), run_dir: str | os.PathLike | None = None,
          resume: str | os.PathLike | None = None, progress: bool = True,
          command: str | None = None) -> TrainResult:
    """Train ``recipe`` (a shipped recipe's name or a YAML file) with ``key=value``
    ``overrides`` in ``run_dir`` (default ``runs/<recipe>[-<overrides>]``), resuming the run
    that folder holds, or the checkpoint ``resume`` names. Under ``torchrun`` every process
    calls this; the global batch is split among them. ``command`` records how the run was
    started (default: the equivalent ``pyimg train`` command line)."""
    overrides = list(overrides)
    config = load_config(recipe, overrides)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config["name"],
                                                                        overrides)
    if command is None:
        command = shlex.join(["pyimg", "train", str(recipe), *overrides, "--run-dir",
                              str(run_dir)])
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(config, run_dir, Path(resume) if resume else None, progress, command)
        return trainer.run()
    finally:
        torch.set_num_threads(threads)  # a recipe's ``threads`` lasts for its run only
