"""The hf_qa and medquad connectors on the real QA sets in ../shared/realdata/qa and on small files written here."""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

import datasets
import pytest

from curate.ingest import hf_qa, medquad
from curate.ingest.base import ConnectorError, HubLocation, Reject, SourceSpec

QA = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "qa"
MEDQA = QA / "medqa" / "medqa_usmle_4opt_test.jsonl"
MEDQA_MAPPING = {"question": "question", "options": "options", "answer_key": "answer_idx", "answer": "answer",
                 "meta": ["meta_info"]}  # as in sources/medqa-usmle-4-options.yaml, plus meta


def read(path=None, mapping=None, module=hf_qa, options=None, **spec):
    spec = SourceSpec(name="test", kind=module.__name__.rsplit(".", 1)[1], license="test-licence", path=path,
                      mapping=mapping or {}, **spec)
    out = list(module.read(spec, options or module.Options()))
    return [o for o in out if not isinstance(o, Reject)], [o for o in out if isinstance(o, Reject)]


def turns(row):
    return {m["role"]: m["content"] for m in row["messages"]}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_medqa_mcq_renders_options_and_answers_with_the_correct_letter():
    raw = [json.loads(line) for line in MEDQA.read_text(encoding="utf-8").splitlines()]
    rows, rejects = read(MEDQA, MEDQA_MAPPING)
    assert (len(rows), rejects) == (1273, [])
    for row, item in zip(rows, raw):
        question, answer = turns(row)["user"], turns(row)["assistant"]
        letter = item["answer_idx"]
        assert answer == f"{letter}. {item['options'][letter].strip()}"
        assert question.startswith(item["question"].strip())
        assert question.endswith("\n".join(f"{k}. {v.strip()}" for k, v in item["options"].items()))
    first = rows[0]
    assert turns(first)["assistant"] == "B. Tell the attending that he cannot fail to disclose this mistake"
    assert "\nA. Disclose the error to the patient and put it in the operative report\n" in turns(first)["user"]
    assert first["provenance"] == {"origin": str(MEDQA), "revision": None, "locator": "0"}
    assert (first["kind"], first["source"], first["license"]) == ("qa", "test", "test-licence")
    meta = json.loads(first["meta"])
    assert (meta["answer_idx"], meta["meta_info"], sorted(meta["options"])) == ("B", "step1", ["A", "B", "C", "D"])


def test_pubmedqa_keyed_by_pmid_with_context_and_decision():
    raw = json.loads((QA / "pubmedqa_ori_pqal.json").read_text(encoding="utf-8"))
    mapping = {"question": "QUESTION", "context": "CONTEXTS", "answer": "final_decision", "long_answer": "LONG_ANSWER"}
    rows, rejects = read(QA / "pubmedqa_ori_pqal.json", mapping)
    assert (len(rows), rejects) == (1000, [])
    assert [r["provenance"]["locator"] for r in rows] == list(raw)
    assert Counter(json.loads(r["meta"])["decision"] for r in rows) == {"yes": 552, "no": 338, "maybe": 110}
    row = rows[0]
    item = raw["21645374"]
    assert row["provenance"]["locator"] == "21645374"
    assert turns(row)["assistant"] == "Yes. " + item["LONG_ANSWER"]
    context = "\n\n".join(item["CONTEXTS"])
    assert turns(row)["user"] == f"Context:\n{context}\n\nQuestion: {item['QUESTION']}"


def test_pubmedqa_answer_template():
    mapping = {"question": "QUESTION", "answer": "final_decision", "long_answer": "LONG_ANSWER",
               "answer_template": "{long_answer} So the answer is {answer}."}
    rows, _ = read(QA / "pubmedqa_ori_pqal.json", mapping, limit=3)
    assert len(rows) == 3
    assert turns(rows[0])["assistant"].endswith("in the lace plant. So the answer is yes.")
    with pytest.raises(ConnectorError, match="answer_template"):
        read(QA / "pubmedqa_ori_pqal.json", {**mapping, "answer_template": "{decision}"})


def test_firstaidqa_bare_source_infers_question_answer(caplog):
    with caplog.at_level(logging.INFO, logger="curate"):
        rows, rejects = read(QA / "firstaidqa" / "firstaidqa_v1.json")
    assert (len(rows), rejects) == (5550, [])
    assert "inferred {'question': 'question', 'answer': 'answer'} from firstaidqa_v1.json" in caplog.text
    assert turns(rows[0]) == {
        "user": "When should you move an injured person at an accident site?",
        "assistant": "You should only move an injured person if there is immediate danger such as a fire, oncoming "
                     "traffic, or toxic fumes. Otherwise, it's best to leave them where they are, administer first aid "
                     "on the spot, and wait for professional medical help to arrive.",
    }
    assert len({r["id"] for r in rows}) == len({(turns(r)["user"], turns(r)["assistant"]) for r in rows})


@pytest.mark.parametrize("columns, pick", [
    (["question", "answer", "Question"], {"question": "question", "answer": "answer"}),
    (["Question", "Complex_CoT", "Response"],
     {"question": "Question", "answer": "Response", "reasoning": "Complex_CoT"}),
    (["Question", "Answer"], {"question": "Question", "answer": "Answer"}),
    (["instruction", "input", "output"], {"question": "instruction", "answer": "output", "input": "input"}),
    (["instruction", "output"], {"question": "instruction", "answer": "output"}),
    (["input", "output"], {"question": "input", "answer": "output"}),
])
def test_infer_mapping_order(columns, pick):
    assert hf_qa.infer_mapping(columns) == pick


def test_infer_mapping_fails_with_the_columns():
    with pytest.raises(ConnectorError, match="columns are prompt, completion"):
        hf_qa.infer_mapping(["prompt", "completion"])


def test_medquad_cdc_through_hf_qa():
    rows, rejects = read(QA / "medquad" / "9_CDC_QA")
    assert (len(rows), rejects) == (270, [])
    first = rows[0]
    assert first["provenance"]["locator"] == "0000001-1"
    assert first["provenance"]["origin"].endswith("9_CDC_QA/0000001.xml")
    assert turns(first)["user"] == "What is (are) Acanthamoeba - Granulomatous Amebic Encephalitis (GAE); Keratitis ?"
    assert turns(first)["assistant"].startswith("Acanthamoeba is a microscopic, free-living ameba")
    meta = json.loads(first["meta"])
    assert meta["url"] == "http://www.cdc.gov/parasites/acanthamoeba/"
    assert (meta["document_id"], meta["document_source"], meta["qtype"]) == ("0000001", "CDC", "information")
    # The CDC subset ships empty <CUI/> elements: no CUI is invented.
    assert all(json.loads(r["meta"])["cuis"] == [] for r in rows)
    assert Counter(json.loads(r["meta"])["qtype"] for r in rows)["prevention"] == 54
    risk = turns(rows[1])["assistant"]
    assert "\n\n\n" not in risk and "\n- Storing and handling lenses improperly\n" in risk


def test_medquad_adam_answers_removed_upstream_are_all_rejected():
    rows, rejects = read(QA / "medquad" / "10_MPlus_ADAM_QA", module=medquad)
    assert rows == []
    assert Counter(r.reason for r in rejects) == {"empty_answer": 41}
    first = rejects[0]
    assert first.locator == "0000001-1"
    assert first.raw["cuis"] == ["C0006826"]
    assert first.raw["question"] == "What is (are) A guide to clinical trials for cancer ?"


def test_medquad_rows_keep_cuis(tmp_path):
    xml = (QA / "medquad" / "10_MPlus_ADAM_QA" / "0000001.xml").read_text(encoding="utf-8")
    filled = tmp_path / "0000001.xml"
    filled.write_text(xml.replace("<Answer></Answer>", "<Answer>\n  Trials test new treatments.  \n</Answer>", 1),
                      encoding="utf-8")
    rows, rejects = read(filled, {"system": "You answer health questions."}, module=medquad)
    assert (len(rows), Counter(r.reason for r in rejects)) == (1, {"empty_answer": 4})
    assert turns(rows[0]) == {"system": "You answer health questions.",
                              "user": "What is (are) A guide to clinical trials for cancer ?",
                              "assistant": "Trials test new treatments."}
    meta = json.loads(rows[0]["meta"])
    assert (meta["cuis"], meta["semantic_types"], meta["semantic_group"]) == (["C0006826"], ["T191"], "Disorders")
    assert (meta["category"], meta["synonyms"]) == ("Disease", ["Intervention study"])


def test_medquad_root_limit_and_mapping():
    rows, rejects = read(QA / "medquad", limit=5)
    assert (len(rows), len(rejects)) == (5, 41)  # the ADAM subset sorts first
    with pytest.raises(ConnectorError, match="only 'system'"):
        read(QA / "medquad", {"question": "question", "answer": "answer"}, module=medquad)
    with pytest.raises(ConnectorError, match="no MedQuAD .xml files"):
        read(QA / "medqa", module=medquad)


def test_renamed_column_names_it_the_file_and_the_columns(tmp_path):
    path = write_json(tmp_path / "medical_o1_sft.json", [{"Question": "q", "Complex_CoT": "c", "Answer": "a"}])
    with pytest.raises(ConnectorError) as error:
        read(path, {"question": "Question", "answer": "Response", "reasoning": "Complex_CoT"})
    assert "column 'Response' not found in medical_o1_sft.json; columns are Question, Complex_CoT, Answer" in str(
        error.value)
    with pytest.raises(ConnectorError, match="'Reponse', 'CoT' not found in medqa_usmle_4opt_test.jsonl"):
        read(MEDQA, {"question": "question", "answer": "Reponse", "reasoning": "CoT"})


def test_medical_o1_reasoning(tmp_path):
    items = [{"Question": "What is the first step for a burn?", "Complex_CoT": "Stop the burning process first.",
              "Response": "Cool the burn under running water for 20 minutes."},
             {"Question": "Dose?", "Complex_CoT": "", "Response": 5}]
    path = write_json(tmp_path / "medical_o1_sft.json", items)
    rows, rejects = read(path)
    assert rejects == [] and len(rows) == 2
    assert rows[0]["reasoning"] == "Stop the burning process first."
    assert turns(rows[0])["assistant"] == "Cool the burn under running water for 20 minutes."
    assert rows[1]["reasoning"] is None and turns(rows[1])["assistant"] == "5"
    system = "Think step by step."
    rows, _ = read(path, {"question": "Question", "answer": "Response", "reasoning": "Complex_CoT", "system": system})
    assert rows[0]["messages"][0] == {"role": "system", "content": system}
    assert rows[0]["id"] != read(path)[0][0]["id"]


def test_hub_layout_parquet_reads_like_the_jsonl(tmp_path):
    items = [json.loads(line) for line in MEDQA.read_text(encoding="utf-8").splitlines()[:6]]
    (tmp_path / "data").mkdir()
    datasets.Dataset.from_list(items[:4]).to_parquet(tmp_path / "data" / "train-00000-of-00001.parquet")
    datasets.Dataset.from_list(items[4:]).to_parquet(tmp_path / "data" / "test-00000-of-00001.parquet")
    rows, rejects = read(tmp_path, MEDQA_MAPPING, options=hf_qa.Options(split="train"))
    expected, _ = read(MEDQA, MEDQA_MAPPING, limit=4)
    assert rejects == [] and [r["id"] for r in rows] == [r["id"] for r in expected]
    assert rows[0]["provenance"]["origin"].endswith("data/train-00000-of-00001.parquet")
    everything, _ = read(tmp_path, MEDQA_MAPPING)
    assert len(everything) == 6
    with pytest.raises(ConnectorError, match="of split 'validation'"):
        read(tmp_path, MEDQA_MAPPING, options=hf_qa.Options(split="validation"))


def test_hub_source_calls_load_dataset(monkeypatch):
    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return datasets.Dataset.from_list([{"Question": "Q?", "Complex_CoT": "think", "Response": "A."}])

    monkeypatch.setattr(hf_qa.datasets, "load_dataset", fake_load_dataset)
    hub = HubLocation(repo="FreedomIntelligence/medical-o1-reasoning-SFT", config="en", split="train", revision="abc")
    rows, _ = read(hub=hub)
    assert calls == [(("FreedomIntelligence/medical-o1-reasoning-SFT", "en"), {"split": "train", "revision": "abc"})]
    assert rows[0]["provenance"] == {"origin": "FreedomIntelligence/medical-o1-reasoning-SFT", "revision": "abc",
                                     "locator": "0"}
    assert rows[0]["reasoning"] == "think"
    with pytest.raises(ConnectorError, match="needs 'path:' or 'hub:'"):
        read()


def test_csv_numbers_blanks_and_limit(tmp_path):
    path = tmp_path / "qa.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "input", "output"])
        writer.writerows([[7, "How many bones in an adult?", 206], [8, "Blank answer?", ""], [9, "", "no question"],
                          [10, "Adult CPR rate?", "100 to 120 compressions a minute"]])
    rows, rejects = read(path, {"question": "input", "answer": "output", "id": "id"})
    assert [turns(r)["assistant"] for r in rows] == ["206", "100 to 120 compressions a minute"]
    assert [r["provenance"]["locator"] for r in rows] == ["7", "10"]
    assert [(r.reason, r.locator) for r in rejects] == [("empty_answer", "8"), ("empty_question", "9")]
    rows, rejects = read(path, limit=1)
    assert len(rows) == 1 and rejects == []


def test_instruction_input_lists_and_nested_columns(tmp_path):
    path = tmp_path / "alpaca.jsonl"
    lines = [{"instruction": "Summarise the steps.", "input": "Check, call, care.", "output": ["Check.", "Call."]},
             {"instruction": "Name a symptom.", "input": "", "output": "Fever", "extra": {"source": {"page": 3}}}]
    path.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    rows, _ = read(path)
    assert turns(rows[0]) == {"user": "Summarise the steps.\n\nCheck, call, care.", "assistant": "Check.\nCall."}
    lines_in_json, _ = read(path.rename(tmp_path / "alpaca.json"))
    assert [r["id"] for r in lines_in_json] == [r["id"] for r in rows]
    path = tmp_path / "alpaca.json"
    assert turns(rows[1])["user"] == "Name a symptom."
    rows, _ = read(path, {"question": "instruction", "answer": "output", "meta": ["extra.source.page"]})
    assert json.loads(rows[1]["meta"]) == {"extra.source.page": 3}


def test_options_as_columns_index_and_text(tmp_path):
    items = [{"q": "Most common site?", "opa": "Hip", "opb": "Wrist", "opc": None, "cop": 1, "ans": "Wrist"},
             {"q": "Which one?", "opa": "X", "opb": "Y", "opc": "Z", "cop": 5, "ans": "W"}]
    path = write_json(tmp_path / "mcq.json", items)
    rows, rejects = read(path, {"question": "q", "options": ["opa", "opb", "opc"], "answer_key": "cop"})
    assert turns(rows[0]) == {"user": "Most common site?\n\nA. Hip\nB. Wrist", "assistant": "B. Wrist"}
    assert [(r.reason, r.locator) for r in rejects] == [("bad_answer_key", "1")]
    rows, rejects = read(path, {"question": "q", "options": ["opa", "opb", "opc"], "answer": "ans"})
    assert turns(rows[0])["assistant"] == "B. Wrist" and [r.reason for r in rejects] == ["bad_answer_key"]


@pytest.mark.parametrize("mapping, message", [
    ({"questoin": "q", "answer": "a"}, "questoin"),
    ({"question": "q"}, "give 'answer'"),
    ({"question": "q", "answer": "a", "answer_key": "k"}, "'answer_key' needs 'options'"),
    ({"answer": "a"}, "give 'question'"),
])
def test_invalid_mapping(mapping, message):
    with pytest.raises(ConnectorError, match=message):
        read(MEDQA, mapping)


def test_unreadable_sources(tmp_path):
    with pytest.raises(ConnectorError, match="does not exist"):
        read(tmp_path / "missing.jsonl")
    with pytest.raises(ConnectorError, match="no .parquet, .jsonl, .json, .csv files"):
        read(tmp_path)
    with pytest.raises(ConnectorError, match="neither a list of objects nor objects keyed by id"):
        read(write_json(tmp_path / "strings.json", ["a", "b"]))


def test_records_under_a_top_level_key(realdata):
    """The FirstAidQA eval bank keeps its 40 records under "questions"; the catalog entry reads them."""
    from curate.catalog import load_catalog
    from curate.ingest import read_source

    spec = load_catalog()["firstaidqa-eval-40"].spec(realdata / "qa/firstaidqa/eval_questions_40.json")
    items = list(read_source(spec))
    assert len(items) == 40 and all(isinstance(r, dict) and r["kind"] == "qa" for r in items)
    first = items[0]
    assert first["provenance"]["locator"] == "1"
    assert first["messages"][0]["content"].startswith("What is the correct ratio of chest compressions")
    spec.options = {"records": "nope"}
    with pytest.raises(ConnectorError, match="no top-level key 'nope'; keys are version, description, questions"):
        list(read_source(spec))
