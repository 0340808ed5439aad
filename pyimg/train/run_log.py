"""What a run reports: a tqdm progress bar (it/s, loss, ETA), a CSV of every logged value
(``log.csv``) and TensorBoard event files (``tensorboard/``). Only the main process logs.
On resume, logged rows past the checkpoint's step are dropped so that the CSV tells one
consistent history."""

import csv
import io
from pathlib import Path

from pyimg.atomic import write_atomically


class RunLog:
    def __init__(self, run_dir: Path, start_step: int, total_steps: int, enabled: bool,
                 progress: bool, tensorboard: bool = True):
        self.enabled = enabled
        self.path = run_dir / "log.csv"
        self.rows: list[dict] = []
        self.columns: list[str] = []
        self.bar = None
        self.writer = None
        if not enabled:
            return
        if self.path.exists():
            with open(self.path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
            self._rewrite()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events past the checkpoint that a killed run had written.
            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step)
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, unit="step",
                            dynamic_ncols=True, desc=run_dir.name)

    def _rewrite(self) -> None:
        self.columns = ["step", "kind"]
        for row in self.rows:
            self.columns += [k for k in row if k not in self.columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomically(self.path, lambda f: f.write(buffer.getvalue().encode()))

    def log(self, step: int, kind: str, values: dict[str, float]) -> None:
        """Record ``values`` ("train" losses, "val" metrics) at ``step``."""
        if not self.enabled:
            return
        row = {"step": step, "kind": kind, **{k: f"{v:.6g}" for k, v in values.items()}}
        self.rows.append(row)
        if any(k not in self.columns for k in row):
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.columns, restval="").writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{kind}/{key}", value, step)
        if self.bar is not None and kind == "val":
            self.bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))

    def advance(self, steps: int, postfix: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
