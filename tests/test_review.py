"""A person's review: ``curate review`` reads a random sample of a step's rows and records verdicts (resumable), the
``review`` stage drops the rows read as wrong, and the dataset card reports the sample's share of correct rows.
Real FirstAidQA pairs throughout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from curate.cli import main
from curate.io import read_jsonl
from curate.orchestrate import run_plan
from curate.pipeline import load_plan
from curate.evaluate.stats import wilson
from curate.quality.review import LabelsError, read_labels, review_order

FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"


def pipeline(tmp_path: Path, realdata: Path, stages: list[dict]) -> Path:
    spec = {"name": "reviewed", "batch_size": 50, "stages": stages, "export": {"format": "messages"},
            "sources": [{"source": "hf_qa", "name": "firstaidqa", "limit": 120, "path": str(realdata / FIRSTAID),
                         "license": "unknown"}]}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def replies(monkeypatch, answers: list[str]) -> list[str]:
    """Feed ``answers`` to ``input`` one per prompt, then the end of input; returns the prompts asked."""
    asked, queue = [], list(answers)

    def fake_input(prompt: str) -> str:
        asked.append(prompt)
        if not queue:
            raise EOFError
        return queue.pop(0)

    monkeypatch.setattr("builtins.input", fake_input)
    return asked


@pytest.fixture
def ingested(tmp_path, realdata):
    path = pipeline(tmp_path, realdata, [{"stage": "heuristics"}])
    run_plan(load_plan(path, tmp_path / "run"))
    return tmp_path / "run", tmp_path / "run" / "02-heuristics"


def test_a_review_reads_rows_in_a_seeded_random_order_and_goes_on_where_it_stopped(ingested, monkeypatch, capsys):
    _, step = ingested
    labels = step.parent / "labels.jsonl"
    asked = replies(monkeypatch, ["c", "w asks two things", "maybe", "u cannot tell", "q"])
    assert main(["review", str(step), "--labels", str(labels), "--sample", "6"]) == 0
    first = read_jsonl(labels)
    assert [(x["verdict"], x["why"], x["order"]) for x in first] == [
        ("correct", "", 0), ("wrong", "asks two things", 1), ("unsure", "cannot tell", 2)]
    assert len(asked) == 5  # "maybe" is asked again; "q" stops before the fourth row is judged
    out = capsys.readouterr().out
    assert "1 of 3 read are correct (33%, 95% CI 6-79%); 1 wrong, 1 unsure" in out and "Q: " in out and "A: " in out

    import pyarrow.parquet as pq
    rows = pq.read_table(sorted(step.glob("part-*.parquet"))).to_pylist()
    order = review_order([r["id"] for r in rows], 0)
    assert order == review_order([r["id"] for r in reversed(rows)], 0) != review_order([r["id"] for r in rows], 1)
    assert [x["id"] for x in first] == order[:3]

    asked = replies(monkeypatch, ["c", "c", "w", "c"])  # a second session: three more rows, then the sample is full
    assert main(["review", str(step), "--labels", str(labels), "--sample", "6"]) == 0
    assert len(asked) == 3 and [x["id"] for x in read_jsonl(labels)] == order[:6]
    assert "3 of 6 read are correct (50%, 95% CI 19-81%); 2 wrong, 1 unsure" in capsys.readouterr().out


def test_the_review_stage_drops_rows_read_as_wrong_and_the_card_reports_the_sample(ingested, tmp_path, realdata,
                                                                                   monkeypatch):
    run, step = ingested
    labels = tmp_path / "labels.jsonl"
    replies(monkeypatch, ["c", "w the answer is about burns", "c", "u", "c"])
    assert main(["review", str(step), "--labels", str(labels), "--sample", "5"]) == 0
    path = pipeline(tmp_path, realdata, [{"stage": "heuristics"}, {"stage": "review", "labels": "labels.jsonl"}])
    report = run_plan(load_plan(path, run))
    review = {s.stage: s for s in report.stages}["review"]
    assert review.dropped == {"reviewed_wrong": 1}
    assert {k: v for k, v in review.counters.items() if k.startswith("review_")} == {
        "review_correct": 3, "review_wrong": 1, "review_unsure": 1}
    wrong = next(x for x in read_labels(labels).values() if x["verdict"] == "wrong")
    [reject] = read_jsonl(run / "03-review" / "rejects.jsonl")
    assert (reject["id"], reject["reason"], reject["detail"]) == (wrong["id"], "reviewed_wrong",
                                                                  "the answer is about burns")
    card = (run / "export" / "README.md").read_text()
    rows_in = review.rows_in
    assert (f"A person read 5 of the {rows_in} rows that reached step `03-review`, taken in a random order "
            "(`curate review`): **3 correct** (60%, 95% Wilson interval 23-88%), 1 wrong, 1 unsure.") in card
    assert f"Rows read as wrong were removed (`reviewed_wrong`). Rows not read: {rows_in - 5}; the sample's" in card
    assert str(tmp_path) not in card

    # more verdicts rerun the stage and the export; a label whose row's text changed is not applied
    replies(monkeypatch, ["w off topic"])
    assert main(["review", str(step), "--labels", str(labels), "--sample", "6"]) == 0
    edited = read_jsonl(labels)
    edited[0]["key"] = "0" * 16
    labels.write_text("".join(json.dumps(x) + "\n" for x in edited))
    report = run_plan(load_plan(path, run))
    review = {s.stage: s for s in report.stages}["review"]
    assert not review.cached and review.dropped == {"reviewed_wrong": 2} and review.counters["review_changed"] == 1
    assert "Verdicts not applied because their row's text changed after it was read: 1." in \
        (run / "export" / "README.md").read_text()


def test_bad_labels_are_named_by_line_and_stop_before_any_row_is_judged(ingested, tmp_path, realdata, capsys):
    run, step = ingested
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"id": "a", "key": "b", "verdict": "correct"}\n{"id": "a", "verdict": "fine"}\n')
    with pytest.raises(LabelsError, match=r"labels.jsonl line 2: a label needs an id, a key and a verdict"):
        read_labels(labels)
    assert main(["review", str(step), "--labels", str(labels)]) == 2
    assert "labels.jsonl line 2" in capsys.readouterr().err
    labels.write_text("{not json\n")
    config = tmp_path / "filters.yaml"
    config.write_text(yaml.safe_dump({"stages": [{"stage": "review", "labels": str(labels)}]}))
    assert main(["filter", str(step), "-o", str(tmp_path / "f"), "--config", str(config), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "labels.jsonl line 1: not JSON" in err and "Traceback" not in err
    assert main(["review", str(tmp_path / "nowhere"), "--labels", str(labels)]) == 2
    assert main(["review", str(step), "--labels", str(tmp_path)]) == 2  # a folder, not a file
    assert main(["review", str(step), "--labels", str(tmp_path / "new.jsonl"), "--sample", "0"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path.name}: not a file" in err and "--sample must be at least 1" in err and "Traceback" not in err


def test_wilson_interval_matches_newcombe_1998():
    """Newcombe (1998), Statistics in Medicine 17:857-872, Table II, method 3 (score interval, no continuity
    correction)."""
    for (k, n), (low, high) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605),
                                (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718)}.items():
        assert wilson(k, n) == pytest.approx((low, high), abs=6e-5)


def test_the_card_says_when_every_row_was_read():
    from types import SimpleNamespace

    from curate.export.card import _reviews
    stats = {"rows_in": 36, "counters": {"review_correct": 24, "review_wrong": 12}}
    [text] = _reviews(SimpleNamespace(stages=[{"stage": "dedup", "stats": {"rows_in": 40}},
                                              {"stage": "review", "dirname": "10-review", "stats": stats}]))
    assert text == ("## Human review\n\nA person read 36 of the 36 rows that reached step `10-review`, taken in a "
                    "random order (`curate review`): **24 correct** (67%, 95% Wilson interval 50-80%), 12 wrong, 0 "
                    "unsure. Rows read as wrong were removed (`reviewed_wrong`). Every row kept was read.")
    assert _reviews(SimpleNamespace(stages=[{"stage": "dedup", "stats": {"rows_in": 40}}])) == []
