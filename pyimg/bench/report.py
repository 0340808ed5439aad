"""A run's report and its files: markdown, CSV, JSON and a PNG plot, each written to a
temporary name, flushed to disk and renamed, so an interrupted run never leaves half a file."""

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyimg.atomic import write_atomically
from pyimg.bench.compare import Change, comparison_table, verdict_counts
from pyimg.bench.environment import Environment
from pyimg.bench.results import Row
from pyimg.bench.tables import pyimg_table, rows_table, summary_table

FORMAT = "pyimg-bench/1"


@dataclass
class Report:
    kind: str  # "ops" or "models"
    title: str
    environment: Environment
    settings: dict
    notes: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    comparison: tuple[str, list[Change]] | None = None  # (old file, changes)

    def suites(self) -> list[str]:
        return list(dict.fromkeys(r.suite for r in self.rows))

    def summary(self) -> str:
        """One summary table per suite, for the terminal and the markdown file."""
        parts = []
        for suite in self.suites():
            parts += [f"### {suite}", summary_table([r for r in self.rows if r.suite == suite])]
        return "\n\n".join(parts)

    def markdown(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        sections = [f"# {self.title}", self.environment.line(), f"Settings: {settings}.",
                    *self.notes]
        if self.left_out:
            sections.append("Left out: " + "; ".join(self.left_out) + ".")
        sections += ["## Summary: p50 per call, x = stock's p50 over this one (above 1: faster)",
                     self.summary()]
        if self.kind == "ops":
            sections += ["## pyimg against stock, torch.compile and a same-size clone",
                         pyimg_table(self.rows)]
        if self.comparison is not None:
            old, changes = self.comparison
            sections += [f"## Compared with {old}: {verdict_counts(changes)}",
                         comparison_table(changes)]
        sections += ["## Every row", rows_table(self.rows)]
        return "\n\n".join(sections) + "\n"

    def to_json(self) -> dict:
        return {"format": FORMAT, "kind": self.kind, "title": self.title,
                "environment": asdict(self.environment), "settings": self.settings,
                "notes": self.notes, "left_out": self.left_out,
                "rows": [asdict(r) for r in self.rows]}

    def csv_text(self) -> str:
        """One line per row, the environment repeated so each line stands alone."""
        env = {f"env_{k}": "/".join(map(str, v)) if isinstance(v, tuple) else v
               for k, v in asdict(self.environment).items()}
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=[*Row.field_names(), *env])
        writer.writeheader()
        for row in self.rows:
            writer.writerow({**asdict(row), **env})
        return out.getvalue()


def load_rows(path: Path) -> list[Row]:
    """The rows of a JSON report written by pyimg bench; ValueError naming the file when it
    is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pyimg bench report (expected format {FORMAT!r})")
    names = set(Row.field_names())
    try:
        return [Row(**{k: v for k, v in row.items() if k in names}) for row in data["rows"]]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: malformed rows ({error})") from None


def write_files(report: Report, out_dir: Path, stem: str, plot: bool = True) -> list[Path]:
    """<stem>.md, .csv, .json (and .png) in out_dir; returns their paths."""
    out_dir = Path(out_dir)
    paths = {suffix: out_dir / f"{stem}.{suffix}" for suffix in ("md", "csv", "json")}
    write_atomically(paths["md"], lambda f: f.write(report.markdown().encode()))
    write_atomically(paths["csv"], lambda f: f.write(report.csv_text().encode()))
    json_text = json.dumps(report.to_json(), indent=1) + "\n"
    write_atomically(paths["json"], lambda f: f.write(json_text.encode()))
    written = list(paths.values())
    if plot:
        from pyimg.bench.plot import plot_png

        png = plot_png(report)
        if png is not None:
            write_atomically(out_dir / f"{stem}.png", lambda f: f.write(png))
            written.append(out_dir / f"{stem}.png")
    return written


def default_stem(kind: str, env: Environment, quick: bool) -> str:
    return f"{kind}{'_quick' if quick else ''}_{env.slug}"

