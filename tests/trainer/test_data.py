"""The data contract: both layouts, CSV and JSON Lines, the splits, and a clear error for each kind of bad folder."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from schemas.taxonomy import DEFAULT_OUT_OF_SCOPE
from trainer.data import DataError, DataNotFoundError, Split, TicketData, load_data, stratified_split, subsample
from trainer.datacheck import pair_label, read_folder
from triage.cli import main

ROWS = [("I lost my card", "lost_or_stolen_card"), ("Where is my card?", "card_arrival")] * 10
TEAM = [(f"printer {i} is jammed again", "printer_jam") for i in range(8)] + [
    (f"please reset my password number {i}", "password_reset") for i in range(8)
] + [(f"the server room is on fire {i}", "outage") for i in range(8)]
TAXONOMY = [("label", "category", "priority"), ("printer_jam", "Hardware", "Low"),
            ("password_reset", "Access", "Medium"), ("outage", "Infrastructure", "High")]


def write(folder: Path, name: str, rows: Sequence[Sequence[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if name.endswith(".jsonl"):
        header, *body = rows
        path.write_text("".join(json.dumps(dict(zip(header, row, strict=True))) + "\n" for row in body))
    else:
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
    return path


def team_folder(tmp_path: Path, train: Sequence[tuple[str, str]] = TEAM,
                taxonomy: Sequence[Sequence[str]] = TAXONOMY) -> Path:
    folder = tmp_path / "team"
    write(folder, "train.csv", [("text", "label"), *train])
    write(folder, "taxonomy.csv", taxonomy)
    return folder


def errors_of(folder: Path) -> list[str]:
    return [str(f) for f in read_folder(folder).errors]


def test_reads_banking77_layout_with_the_default_taxonomy(write_csv_dir) -> None:
    folder = write_csv_dir(ROWS, ROWS[:4])
    data = load_data(folder, "unused/hub-id")
    assert (len(data.train), len(data.test)) == (20, 4)
    assert data.train.texts[0] == "I lost my card" and data.train.intents[1] == "card_arrival"
    assert data.source == str(folder) and "card_arrival" in data.taxonomy.intents
    assert data.taxonomy.out_of_scope_category == "General Inquiry"


def test_team_labels_and_taxonomy_carve_a_test_split(tmp_path: Path) -> None:
    data = load_data(team_folder(tmp_path), "unused")
    assert data.taxonomy.categories == ("Hardware", "Access", "Infrastructure", DEFAULT_OUT_OF_SCOPE)
    assert len(data.train) + len(data.test) == len(TEAM) and set(data.test.intents) == {r[1] for r in TEAM}
    assert not set(data.train.texts) & set(data.test.texts)


def test_category_priority_layout_derives_pair_labels_from_jsonl(tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    rows = [("text", "category", "priority")] + [(f"refund please {i}", "Refunds", "Medium") for i in range(6)] + [
        (f"someone stole my account {i}", "Security", "High") for i in range(6)]
    write(folder, "train.jsonl", rows)
    write(folder, "test.jsonl", rows[:1] + rows[1:3] + rows[7:9])
    data = load_data(folder, "unused")
    assert set(data.taxonomy.intents) == {pair_label("Refunds", "Medium"), pair_label("Security", "High")}
    assert data.taxonomy.rule(pair_label("Security", "High")).category == "Security"
    assert len(data.test) == 4 and data.validation is None


def test_validation_file_is_used_as_is(tmp_path: Path) -> None:
    folder = team_folder(tmp_path)
    write(folder, "validation.csv", [("text", "label"), ("my password expired", "password_reset")])
    data = load_data(folder, "unused")
    assert data.validation == Split(["my password expired"], ["password_reset"])


def test_out_of_scope_row_names_the_category(tmp_path: Path) -> None:
    folder = team_folder(tmp_path, taxonomy=[*TAXONOMY, ("out_of_scope", "Access", "Low")])
    taxonomy = load_data(folder, "unused").taxonomy
    assert taxonomy.out_of_scope_category == "Access"
    assert taxonomy.categories == ("Hardware", "Access", "Infrastructure")
    assert "out_of_scope" not in taxonomy.intents


@pytest.mark.parametrize(
    ("mutate", "where", "says"),
    [
        (lambda f: (f / "train.csv").unlink(), "train.csv", "no train.csv"),
        (lambda f: write(f, "train.csv", [("body", "label"), ("x", "outage")]), "train.csv:1", "no text column"),
        (lambda f: write(f, "train.csv", [("text", "label"), *TEAM, ("", "outage")]), "train.csv:26", "empty text"),
        (lambda f: write(f, "train.csv", [("text", "label"), *TEAM, ("hi", "")]), "train.csv:26", "no label"),
        (lambda f: write(f, "train.csv", [("text", "label"), *TEAM, ("hi", "outgae")]), "train.csv:26",
         "'outgae' (1 tickets) is not in the taxonomy"),
        (lambda f: write(f, "taxonomy.csv", [*TAXONOMY, ("toner", "Hardware", "Low")]), "taxonomy.csv:5",
         "'toner' has no training tickets"),
        (lambda f: write(f, "train.csv", [("text", "label"), *TEAM[:20]]), "train.csv:18", "4 training tickets"),
        (lambda f: write(f, "taxonomy.csv", [*TAXONOMY[:3], ("outage", "Infrastructure", "P1")]), "taxonomy.csv",
         "'P1' for 'outage' is not High, Medium or Low"),
        (lambda f: write(f, "taxonomy.csv", [*TAXONOMY, ("printer_jam", "Hardware", "Low")]), "taxonomy.csv",
         "already on line 2"),
        (lambda f: write(f, "taxonomy.csv", [*TAXONOMY[:3], ("outage", "access", "High")]), "taxonomy.csv",
         "'Access' and 'access' would share the routing topic"),
        (lambda f: write(f, "taxonomy.csv", [*TAXONOMY[:3], ("outage", "???", "High")]), "taxonomy.csv",
         "gives no valid routing topic name"),
        (lambda f: (f / "taxonomy.csv").unlink(), "taxonomy.csv", "no taxonomy.csv"),
        (lambda f: write(f, "test.csv", [("text", "label"), ("x", "out_of_scope")]), "test.csv:2", "is reserved"),
        (lambda f: (f / "test.jsonl").write_text('{"text": "a", "label": "outage"}\nnot json\n'), "test.jsonl:2",
         "not JSON"),
        (lambda f: write(f, "train.csv", [("text", "label"), *TEAM, ("x" * 10_001, "outage")]), "train.csv:26",
         "the worker dead-letters"),
    ],
    ids=["no-train", "no-text-column", "empty-text", "no-label", "unknown-label", "label-without-data", "too-few",
         "bad-priority", "duplicate-label", "slug-collision", "invalid-slug", "no-taxonomy", "reserved-label",
         "bad-json", "too-long"],
)
def test_each_kind_of_bad_folder_gets_its_clear_error(tmp_path: Path, mutate, where: str, says: str) -> None:
    folder = team_folder(tmp_path)
    mutate(folder)
    errors = errors_of(folder)
    assert any(where in e and says in e and " — " in e for e in errors), errors
    with pytest.raises((DataError, DataNotFoundError)) as info:
        load_data(folder, "triage-tests/no-such-dataset")
    assert says in str(info.value) or "no train.csv" in str(info.value)


def test_priority_outside_the_three_on_a_ticket_names_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    write(folder, "train.csv", [("text", "category", "priority"), *[("refund", "Refunds", "Medium")] * 5,
                                ("help", "Refunds", "P2")])
    assert any("train.csv:7" in e and "'P2'" in e and "P1-P4" in e for e in errors_of(folder))


def test_warnings_name_duplicates_leaks_and_long_texts_without_refusing(tmp_path: Path) -> None:
    folder = team_folder(tmp_path, train=[*TEAM, TEAM[0], ("printer says " + "jam " * 300, "printer_jam")])
    write(folder, "test.csv", [("text", "label"), TEAM[1]])
    contents = read_folder(folder)
    warnings = [str(w) for w in contents.warnings]
    assert not contents.errors
    assert any("train.csv:26: duplicate of" in w and "train.csv:2" in w for w in warnings), warnings
    assert any("test.csv:2: same text as" in w and "train.csv:3" in w for w in warnings), warnings
    assert any("train.csv:27" in w and "characters" in w for w in warnings), warnings
    assert any("validation share" in w for w in warnings), "8 tickets a label leave its thresholds to chance"


def test_data_check_command_prints_the_report_and_exits_1_on_errors(tmp_path: Path) -> None:
    folder = team_folder(tmp_path)
    ok = CliRunner().invoke(main, ["data", "check", str(folder)])
    assert ok.exit_code == 0, ok.output
    assert "train 24" in ok.output and "printer_jam" in ok.output and "ready to train" in ok.output
    write(folder, "train.csv", [("text", "label"), *TEAM, ("hi", "outgae")])
    bad = CliRunner().invoke(main, ["data", "check", str(folder)])
    assert bad.exit_code == 1 and "train.csv:26" in bad.output and "refused" in bad.output


def test_nothing_found_names_every_source_tried(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError) as info:
        load_data(missing, "triage-tests/no-such-dataset")
    message = str(info.value)
    assert str(missing) in message and "triage-tests/no-such-dataset" in message
    assert "--data" in message and "TRIAGE_DATA_DIR" in message


def test_validation_split_is_stratified_and_disjoint(banking77: TicketData) -> None:
    train, val = stratified_split(banking77.train, 0.1, seed=7)
    assert len(train) + len(val) == len(banking77.train)
    assert set(val.intents) == set(banking77.train.intents)
    counts, val_counts = Counter(banking77.train.intents), Counter(val.intents)
    assert all(abs(val_counts[i] - 0.1 * counts[i]) <= 1 for i in counts)
    again, _ = stratified_split(banking77.train, 0.1, seed=7)
    assert again == train, "the split is reproducible from the seed"


def test_a_small_folder_still_gets_every_label_in_its_share() -> None:
    data = Split([f"t{i}" for i in range(50)], [f"c{i % 10}" for i in range(50)])
    _, share = stratified_split(data, 0.1, seed=0)
    assert set(share.intents) == set(data.intents)


def test_subsample_keeps_every_class() -> None:
    data = Split([f"t{i}" for i in range(300)], [f"c{i % 3}" for i in range(300)])
    small = subsample(data, 30, seed=0)
    assert len(small) == 30 and Counter(small.intents) == {"c0": 10, "c1": 10, "c2": 10}
    assert subsample(data, None, seed=0) is data
