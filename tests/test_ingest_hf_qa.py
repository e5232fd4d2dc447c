"""The hf_qa and medquad connectors on the real QA sets in ../shared/realdata/qa and on small files written here."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from pathlib import Path

import datasets
import pytest
from pydantic import ValidationError

from curate.ingest import hf_qa, medquad
from curate.ingest.base import ConnectorError, HubLocation, Reject, SourceSpec

QA = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "qa"
MEDQA = QA / "medqa" / "medqa_usmle_4opt_test.jsonl"
MEDQA_MAPPING = {"question": "question", "options": "options", "answer_key": "answer_idx", "answer": "answer",
                 "meta": ["meta_info"]}  # as in curate/sources/medqa-usmle-4-options.yaml, plus meta


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


FIRSTAID = QA / "firstaidqa" / "firstaidqa_v1.json"
LATIN1_ROWS = [1985, 3352, 3372, 3381]  # FirstAidQA rows whose text is all latin-1 ("déjà vu", "40°C")


def firstaid(indexes):
    items = json.loads(FIRSTAID.read_text(encoding="utf-8"))
    return [items[i] for i in indexes]


def test_a_truncated_jsonl_line_is_one_reject_and_the_other_rows_stay(tmp_path):
    lines = MEDQA.read_text(encoding="utf-8").splitlines()[:20]
    whole = write_lines(tmp_path / "whole.jsonl", lines)
    broken = write_lines(tmp_path / "broken.jsonl", lines[:9] + [lines[9][:200]] + lines[10:])
    rows, rejects = read(broken, MEDQA_MAPPING)
    assert len(rows) == 19 and [(r.reason, r.locator) for r in rejects] == [("bad_line", f"{broken}:10")]
    assert rejects[0].detail.startswith(f"{broken} line 10: Unterminated string starting at: column ")
    assert rejects[0].raw == lines[9][:200]
    expected, _ = read(whole, MEDQA_MAPPING)
    del expected[9]
    assert [r["provenance"]["locator"] for r in rows] == [r["provenance"]["locator"] for r in expected]
    assert [turns(r) for r in rows] == [turns(r) for r in expected]


def test_json_lines_that_are_not_objects_and_blank_lines(tmp_path):
    items = firstaid(range(3))
    path = write_lines(tmp_path / "qa.json", [json.dumps(items[0]), "", json.dumps(list(items[1].values())),
                                              json.dumps(items[2]), "  "])
    rows, rejects = read(path)
    assert [r["provenance"]["locator"] for r in rows] == ["0", "2"]
    assert [r.detail for r in rejects] == [f"{path} line 3: a JSON list, not an object"]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_bom_encodings_read_like_utf8(tmp_path, encoding):
    items = firstaid([0, *LATIN1_ROWS, 6])  # 6 holds a right quote (U+2019), outside latin-1
    text = "\n".join(json.dumps(item, ensure_ascii=False) for item in items)
    plain = tmp_path / "plain.jsonl"
    plain.write_text(text, encoding="utf-8")
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(("\ufeff" + text).encode(encoding) if encoding == "utf-16-be" else text.encode(encoding))
    assert bom.read_bytes()[:2] in (b"\xef\xbb", b"\xff\xfe", b"\xfe\xff")
    rows, rejects = read(bom)
    assert rejects == [] and [turns(r) for r in rows] == [turns(r) for r in read(plain)[0]]
    assert "déjà vu" in turns(rows[1])["assistant"]


def test_latin1_csv_is_one_reject_with_the_fix_and_reads_with_the_encoding_option(tmp_path):
    items = firstaid(LATIN1_ROWS)
    folder = tmp_path / "qa"
    folder.mkdir()
    for name, encoding in (("a_latin1.csv", "latin-1"), ("b_utf8.csv", "utf-8")):
        with (folder / name).open("w", newline="", encoding=encoding) as f:
            writer = csv.DictWriter(f, ["question", "answer"])
            writer.writeheader()
            writer.writerows(items)
    rows, rejects = read(folder)
    assert len(rows) == 4 and all(r["provenance"]["origin"].endswith("b_utf8.csv") for r in rows)
    offset = (folder / "a_latin1.csv").read_bytes().index("é".encode("latin-1"))
    assert [(r.reason, r.locator) for r in rejects] == [("bad_encoding", str(folder / "a_latin1.csv"))]
    assert rejects[0].detail == (f"{folder / 'a_latin1.csv'} is not utf-8: byte 0xe9 at offset {offset} (line 2): "
                                 "invalid continuation byte; save it as UTF-8, or name its encoding in the source's "
                                 "options (e.g. 'encoding: latin-1')")
    rows, rejects = read(folder / "a_latin1.csv", options=hf_qa.Options(encoding="latin-1"))
    assert rejects == [] and [turns(r)["assistant"] for r in rows] == [item["answer"] for item in items]
    with pytest.raises(ValidationError, match="unknown encoding 'latin-9x'"):
        hf_qa.Options(encoding="latin-9x")


def test_csv_bad_records_name_their_physical_line(tmp_path):
    """MedQuAD answers span lines inside quotes, so a record's line number is not its index."""
    pairs, _ = read(QA / "medquad" / "9_CDC_QA", module=medquad, limit=40)
    records = [[turns(r)["user"], turns(r)["assistant"]] for r in pairs if "\n" in turns(r)["assistant"]][:4]
    assert len(records) == 4

    def render(rows):
        buffer = io.StringIO(newline="")
        csv.writer(buffer).writerows(rows)
        return buffer.getvalue()

    head = render([["question", "answer"], *records[:2]])
    text = head + render([[*records[2], "a third field"], records[3]])
    path = tmp_path / "medquad.csv"
    path.write_text(text + '"How is it spread?","Through contact with', encoding="utf-8", newline="")
    rows, rejects = read(path)
    assert [turns(r)["assistant"] for r in rows] == [records[i][1] for i in (0, 1, 3)]
    assert [r["provenance"]["locator"] for r in rows] == ["0", "1", "3"]
    third, last = head.count("\n") + 1, text.count("\n") + 1
    assert [r.detail for r in rejects] == [f"{path} line {third}: 3 fields where the header has 2",
                                           f"{path} line {last}: CSV: unexpected end of data"]


def test_broken_and_empty_json_files_are_rejects_not_source_errors(tmp_path):
    text = json.dumps(firstaid(range(5)), indent=2)
    broken = tmp_path / "a_broken.json"
    broken.write_text(text[: len(text) // 2], encoding="utf-8")
    (tmp_path / "b_empty.jsonl").touch()
    write_json(tmp_path / "c_good.json", firstaid(range(5, 8)))
    rows, rejects = read(tmp_path)
    assert len(rows) == 3
    assert [r.reason for r in rejects] == ["bad_json", "empty_file"]
    assert rejects[0].detail.startswith(f"{broken} is neither JSON (") and "nor JSON lines" in rejects[0].detail
    assert rejects[1].detail == f"{tmp_path / 'b_empty.jsonl'} is empty"
    header = tmp_path / "header.csv"
    header.write_text('"question,answer\n' + "\n".join(",".join(item.values()) for item in firstaid([1, 2])))
    assert [(r.reason, r.locator) for r in read(header)[1]] == [("bad_line", f"{header}:1")]


def write_lines(path: Path, lines) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
