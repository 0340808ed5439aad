"""--compare: what got faster or slower, with a noise threshold from the runs' spread."""

import pytest

from pyimg.bench.compare import compare, comparison_table, verdict_counts
from pyimg.bench.results import Row


def row(variant, p50, spread=0.02, n=100, case="c", error=None):
    return Row("ops", "op", case, variant, "forward", "pyimg", n=n, p50_us=p50,
               spread=spread, error=error)


def verdicts(old, new, threshold=0.05):
    return {c.row.variant: c.verdict for c in compare(old, new, threshold)}


def test_changes_beyond_the_threshold_count():
    old = [row("a", 100), row("b", 100), row("c", 100)]
    new = [row("a", 80), row("b", 130), row("c", 103)]
    assert verdicts(old, new) == {"a": "faster", "b": "slower", "c": "same"}


def test_a_wide_spread_with_few_samples_raises_the_noise_threshold():
    old, new = [row("a", 100, spread=0.5, n=5)], [row("a", 80, spread=0.5, n=5)]
    (change,) = compare(old, new, 0.05)
    assert change.verdict == "same" and change.noise > 0.2
    assert change.speedup == pytest.approx(1.25)


def test_rows_that_appear_disappear_or_fail():
    old = [row("kept", 100), row("gone", 100), row("broke", 100)]
    new = [row("kept", 100), row("new", 50), row("broke", None, error="RuntimeError: x")]
    assert verdicts(old, new) == {"kept": "same", "new": "new", "gone": "gone",
                                  "broke": "failed"}


def test_rows_match_on_case_and_mode_too():
    old = [row("a", 100, case="small")]
    new = [row("a", 10, case="large")]
    changes = compare(old, new)
    assert sorted(c.verdict for c in changes) == ["gone", "new"]


def test_table_and_counts():
    changes = compare([row("a", 100), row("b", 100)], [row("a", 50), row("b", 100)])
    table = comparison_table(changes)
    assert "x2.00" in table and "faster" in table
    assert verdict_counts(changes) == "1 faster, 1 same"


def test_compare_flag_and_subcommand(cli, fast, suite_dir, tmp_path):
    run = ["bench", "ops", "tiny", "--suite-dir", suite_dir, "--no-plot", *fast]
    assert cli(*run, "--out", tmp_path / "old")[0] == 0
    old = next((tmp_path / "old").glob("*.json"))
    status, output = cli(*run, "--out", tmp_path / "new", "--compare", old)
    assert status == 0, output
    assert f"compared with {old}:" in output and "verdict" in output
    new = next((tmp_path / "new").glob("*.json"))
    assert f"## Compared with {old}" in new.with_suffix(".md").read_text()
    status, output = cli("bench", "compare", old, new, "--threshold", "10")
    assert status == 0
    assert output.strip().endswith(f"{new} against {old}: 6 same")


def test_compare_names_a_file_that_is_not_a_report(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    status, output = cli("bench", "compare", bad, bad)
    assert status == 2 and f"{bad}: not a pyimg bench report" in output
    bad.write_text("{")
    assert "not JSON" in cli("bench", "compare", bad, bad)[1]
    assert "No such file" in cli("bench", "compare", tmp_path / "none.json", bad)[1]
