"""`bmrs inspect` on real recorded responses and on crafted ones with known defects."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from worker.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "elexon" / "samples"


def inspect(*args: str) -> tuple[int, dict | str]:
    result = CliRunner().invoke(main, ["inspect", *args])
    if result.exit_code != 0:
        return result.exit_code, result.output
    return 0, json.loads(result.output)


def test_real_autumn_and_spring_system_prices() -> None:
    for name, periods in (("2025-10-26", 50), ("2026-03-29", 46)):
        code, report = inspect(str(SAMPLES / f"DISEBSP__nikolisan-bmrs_api-{name}.json"), "--dataset", "DISEBSP", "--json")
        assert code == 0
        assert report["rows"] == periods and report["exact_duplicates"] == 0
        assert report["distinct_keys"] == periods
        assert report["periods_present"] == report["periods_expected"] == periods
        assert report["outside_window"] == 0 and report["schema_drift"] == []


def test_duplicates_revisions_outside_rows_and_drift_are_counted(tmp_path: Path) -> None:
    rows = json.loads((SAMPLES / "DISEBSP__nikolisan-bmrs_api-2025-10-26.json").read_text())["data"]
    crafted = rows[:10] + rows[:3]  # three exact duplicates
    crafted.append({**rows[4], "systemSellPrice": 999.0, "createdDateTime": "2025-11-20T00:00:00Z"})  # a revision
    crafted.append({**rows[5], "newField": 1})  # drift: same catalog content, so a duplicate
    path = tmp_path / "response.json"
    path.write_text(json.dumps(crafted))  # the bare-list envelope
    code, report = inspect(
        str(path), "--dataset", "disebsp", "--window-start", "2025-10-25T23:00:00Z",
        "--window-end", "2025-10-26T01:00:00Z", "--json",
    )
    assert code == 0
    assert report["rows"] == 15 and report["exact_duplicates"] == 4
    assert report["distinct_keys"] == 10  # the revision and the drifted row share keys
    assert report["periods_present"] == 10 and report["periods_expected"] == 50
    assert report["outside_window"] == sum(1 for r in crafted if r["startTime"] > "2025-10-26T01:00:00Z")
    assert report["schema_drift"] == ["newField"]


def test_unreadable_responses_are_one_clear_line() -> None:
    code, output = inspect(str(SAMPLES / "PN_stream__pgrach-ElexonDataFetcher-FRAGMENT.txt"), "--dataset", "PN")
    assert code == 2 and "is not complete JSON" in output and "Traceback" not in output
    # AGPT is in the catalog, but this sample is /generation/actual/per-type (nested rows, no
    # publishTime): one clear line naming the field, no traceback.
    code, output = inspect(str(SAMPLES / "AGPT__advanced-computing-elexon_energy.json"), "--dataset", "AGPT")
    assert code == 2 and "AGPT: required field 'publishTime'" in output and "Traceback" not in output
    code, output = inspect(str(SAMPLES / "AGPT__advanced-computing-elexon_energy.json"), "--dataset", "NOPE")
    assert code == 2 and "unknown dataset 'NOPE'" in output
    code, output = inspect("/nonexistent.json", "--dataset", "FREQ")
    assert code == 2 and "cannot read" in output
