"""Grounded QA synthesis with the real embedded Gemma (llama.cpp) on real FM 4-25.11 pages: the extractive
(answer-first) mode the embedded base model gets by default, the abstractive mode, the round trip, and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.embed import embed
from curate.ingest import read_source
from curate.ingest.base import SourceSpec
from curate.io import read_jsonl, write_parquet
from curate.orchestrate import index_folder, synth_folder
from curate.rag.index import ChunkIndex
from curate.rag.question_checks import QUESTION_STARTS, round_trip
from curate.rag.synth import (Failed, SynthQA, WriterConfig, parse_answer, parse_questions,
                              parse_unit_question)
from curate.rag.templates import TEMPLATES
from curate.rag.units import answerable_units
from curate.schema import ARROW_SCHEMA

FM = "pdf/us_army_FM4-25.11_first_aid.pdf"
PAGES = (47, 48)  # bleeding control with a tourniquet
SYNTH = {"top_k": 2, "question_source": "both"}  # answer_mode auto: extractive for the embedded base model
WRITER = {"top_k": 2}  # the default for the embedded base model: the shipped question writer
ABSTRACTIVE = {"answer_mode": "abstractive", "questions_per_chunk": 1, "top_k": 2}
REASONS = {"insufficient_context", "no_citation", "copied_example", "malformed_questions", "malformed_answer"}
EXTRACTIVE_REASONS = {"no_answerable_unit", "malformed_question", "not_a_question", "mentions_source",
                      "unresolved_pronoun", "copied_example", "duplicate_question", "round_trip_failed",
                      "question_off_unit", "wrong_answer_type", "no_template_question", "restates_unit",
                      "not_singled_out", "adds_context", "drops_prohibition", "inverts_condition",
                      "low_confidence"}


def read(folder: Path) -> list[dict]:
    files = sorted(folder.glob("part-*.parquet"))
    return pq.read_table(files).to_pylist() if files else []


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, realdata):
    tmp = tmp_path_factory.mktemp("synth")
    spec = SourceSpec(name="fm-4-25-11", kind="pdf", path=realdata / FM, license="public-domain")
    pages = [r for r in read_source(spec) if isinstance(r, dict) and r["page"] in PAGES]
    (tmp / "pages").mkdir()
    write_parquet(tmp / "pages" / "part-00000.parquet", {c: [p[c] for p in pages] for c in ARROW_SCHEMA.names},
                  ARROW_SCHEMA)
    stats, total = index_folder(tmp / "pages", tmp / "index", {"size": 160, "overlap": 20})
    assert total == stats.rows_out >= 3
    return tmp / "index"


@pytest.fixture(scope="module")
def uninterrupted(index_dir):
    out = index_dir.parent / "synth-a"
    stats = synth_folder(index_dir, out, SYNTH, batch_size=1)
    return out, stats


def test_extractive_answers_are_verbatim_units_of_their_cited_chunk(uninterrupted, index_dir):
    out, stats = uninterrupted
    chunks = {c["id"]: c for c in read(index_dir / "chunks")}
    rows, rejects = read(out), read_jsonl(out / "rejects.jsonl")
    assert stats.rows_in == len(chunks) and stats.counters["units"] >= len(chunks)
    assert stats.counters["questions_llm"] >= 1 and stats.counters["questions_template"] >= 1
    assert {r["reason"] for r in rejects} <= EXTRACTIVE_REASONS
    assert len(rows) >= 2, f"kept {len(rows)}; rejects: {[r['reason'] for r in rejects]}"
    for row in rows:
        meta = json.loads(row["meta"])
        assert meta["generator"]["answer_mode"] == "extractive" and meta["round_trip"]["rank"] is not None
        if meta["generator"]["question_source"] == "llm":
            assert meta["generator"]["backend"] == "llamacpp" and len(meta["prompt"]["sha256"]) == 64
        else:
            assert meta["template"] == f"synth_qa.{meta['generator']['question_source']}"
        question, answer = (m["content"] for m in row["messages"])
        assert question.endswith("?") and question.split()[0].lower() in QUESTION_STARTS
        own = chunks[meta["chunk_id"]]
        assert answer in [u.text for u in answerable_units(own["text"])[0]]  # the unit's text, not the model's
        assert meta["chunk_id"] in {c["chunk_id"] for c in row["citations"]} and own["text"] in row["context"]


def test_template_questions_need_no_model(index_dir):
    out = index_dir.parent / "synth-templates"
    stats = synth_folder(index_dir, out, {"top_k": 2, "question_source": "templates"}, batch_size=4)
    rows = read(out)
    assert rows and "questions_llm" not in stats.counters and stats.counters.get("tokens_generated", 0) == 0
    assert {json.loads(r["meta"])["generator"]["question_source"] for r in rows} <= {name for name, _ in TEMPLATES}
    by_question = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in rows}
    assert by_question.get("What is a tourniquet?", "").startswith("A tourniquet is a constricting band")


def test_abstractive_pairs_are_grounded_in_cited_chunks(index_dir, realdata):
    out = index_dir.parent / "synth-abstractive"
    stats = synth_folder(index_dir, out, ABSTRACTIVE, batch_size=1)
    chunks = {c["id"]: c for c in read(index_dir / "chunks")}
    rows = read(out)
    rejects = read_jsonl(out / "rejects.jsonl")
    assert stats.rows_in == len(chunks) and stats.counters["tokens_generated"] > 0
    assert len(rows) + len(rejects) == len(chunks)  # one question per chunk: each is kept or rejected, none lost
    assert {r["reason"] for r in rejects} <= REASONS
    for r in rejects:
        if r["reason"].startswith("malformed"):
            assert r["detail"]  # the raw model output is kept
    page_text = {p["page"]: p["text"] for p in read(index_dir.parent / "pages")}
    for row in rows:
        assert row["kind"] == "qa" and [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["messages"][0]["content"].endswith("?") and row["citations"]
        for cite in row["citations"]:
            chunk = chunks[cite["chunk_id"]]  # every citation resolves to a real chunk ...
            assert chunk["text"] in row["context"]
            span = "\n\n".join(page_text[n] for n in range(cite["page"], cite["page_end"] + 1))
            assert chunk["text"] in span  # ... whose text is in the PDF pages it names
        meta = json.loads(row["meta"])
        assert meta["generator"]["backend"] == "llamacpp" and len(meta["prompt"]["sha256"]) == 64
        assert meta["chunk_id"] in chunks and meta["generator"]["answer_mode"] == "abstractive"


def test_auto_mode_is_extractive_for_base_models_and_abstractive_for_instruct_ones(index_dir):
    picked = {}
    for tuned in (False, True):
        stage = SynthQA({"index": str(index_dir / "chroma"), "llm": {"instruction_tuned": tuned}})
        stage.setup()
        picked[tuned] = stage.mode, stage.question_source, stage.llm is not None, stage.writer is not None
        for model in (stage.llm, stage.writer):
            if model:
                model.close()
    assert picked == {False: ("extractive", "writer", False, True), True: ("abstractive", "both", True, False)}


def test_round_trip_drops_a_question_that_retrieves_another_chunk(tmp_path, realdata):
    spec = SourceSpec(name="fm-4-25-11", kind="pdf", path=realdata / FM, license="public-domain")
    pages = [r for r in read_source(spec) if isinstance(r, dict) and r["page"] in (48, 61)]
    (tmp_path / "pages").mkdir()
    write_parquet(tmp_path / "pages" / "part-00000.parquet",
                  {c: [p[c] for p in pages] for c in ARROW_SCHEMA.names}, ARROW_SCHEMA)
    index_folder(tmp_path / "pages", tmp_path / "index", {"size": 160, "overlap": 20})
    index = ChunkIndex(tmp_path / "index" / "chroma", create=False)
    chunk = next(c for c in read(tmp_path / "index" / "chunks") if "2 inches or more beyond" in c["text"])
    unit = next(u for u in answerable_units(chunk["text"])[0] if "2 inches or more beyond" in u.text)
    on_unit = "How far beyond the edges of a chest wound should the plastic covering extend?"
    elsewhere = "When should a tourniquet be used instead of a pressure dressing?"
    vectors = embed([on_unit, elsewhere, unit.text], index.embedder)
    hits = index.query_vectors(vectors[:2], 3)  # round_trip_k's default
    kept, dropped = (round_trip(unit, chunk["id"], h, v, vectors[2]) for h, v in zip(hits, vectors[:2]))
    assert kept.rank is not None and kept.similarity > dropped.similarity
    assert dropped.rank is None  # the stage drops it as round_trip_failed


def test_unit_questions_are_parsed_and_checked():
    examples = ("When was the Eiffel Tower completed?",)
    assert parse_unit_question('{"question": "When is a tourniquet used?"}', examples) == "When is a tourniquet used?"
    assert parse_unit_question('{"question": "What does the passage describe?"}', examples) == \
        Failed("mentions_source")
    assert parse_unit_question('{"question": "When was the Eiffel Tower completed?"}', examples) == \
        Failed("copied_example")
    assert parse_unit_question('{"question": "cut', examples) is None


def kill_then_resume(index_dir: Path, out: Path, config: dict, poll: float) -> None:
    """Start synthesis in a subprocess, SIGKILL it once its first batch is done (while it generates the next), then
    rerun it here to the end."""
    code = ("import sys; from pathlib import Path; from curate.orchestrate import synth_folder; "
            f"synth_folder(Path(sys.argv[1]), Path(sys.argv[2]), {config!r}, batch_size=1)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(index_dir), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.time() + 300
    while not (out / "shard-00000.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(poll)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "_stage.json").exists(), "the run finished before it could be killed"
    synth_folder(index_dir, out, config, batch_size=1)


def test_killed_synthesis_resumes_to_identical_rows(uninterrupted, index_dir):
    out_a, _ = uninterrupted
    out_b = index_dir.parent / "synth-b"
    kill_then_resume(index_dir, out_b, SYNTH, 0.2)
    assert read(out_b) == read(out_a)
    assert read_jsonl(out_b / "rejects.jsonl") == read_jsonl(out_a / "rejects.jsonl")


@pytest.fixture(scope="module")
def written(index_dir):
    out = index_dir.parent / "written-a"
    stats = synth_folder(index_dir, out, WRITER, batch_size=1)
    return out, stats


def test_writer_questions_pass_every_check_and_single_out_their_unit(written, index_dir):
    from curate.rag.question_checks import answer_type_problem, question_problem
    from curate.rag.question_checks import restates

    out, stats = written
    chunks = {c["id"]: c for c in read(index_dir / "chunks")}
    rows, rejects = read(out), read_jsonl(out / "rejects.jsonl")
    assert stats.counters["questions_writer"] >= len(rows) >= len(chunks), [r["reason"] for r in rejects]
    assert {r["reason"] for r in rejects} <= EXTRACTIVE_REASONS
    for row in rows:
        meta = json.loads(row["meta"])
        question, answer = (m["content"] for m in row["messages"])
        assert meta["generator"]["question_source"] == "writer" and meta["generator"]["writer"]["sha256"]
        assert question_problem(question, ()) is None and answer_type_problem(question, answer) is None
        assert not restates(question, answer) and meta["round_trip"]["rank"] is not None
        assert meta["written"]["margin"] is None or meta["written"]["margin"] > 0
        assert meta["written"]["logprob"] >= WriterConfig().min_logprob
        assert answer in [u.text for u in answerable_units(chunks[meta["chunk_id"]]["text"])[0]]
    for reject in rejects:
        if reject["reason"] == "not_singled_out":
            candidates = json.loads(reject["detail"])["candidates"]
            assert all(c["margin"] is None or c["margin"] <= 0 for c in candidates)
        if reject["reason"] == "low_confidence":
            candidates = json.loads(reject["detail"])["candidates"]
            floor = WriterConfig().min_logprob
            assert all(c["logprob"] < floor for c in candidates if c["problem"] == "low_confidence")


def test_killed_writer_synthesis_resumes_to_identical_rows(written, index_dir):
    out_a, _ = written
    out_b = index_dir.parent / "written-b"
    kill_then_resume(index_dir, out_b, WRITER, 0.1)  # killed while the writer generates for the next chunk
    assert read(out_b) == read(out_a)
    assert read_jsonl(out_b / "rejects.jsonl") == read_jsonl(out_a / "rejects.jsonl")


def test_a_question_that_finds_its_chunk_but_sits_far_from_its_unit_is_off_unit(index_dir):
    strict = index_dir.parent / "synth-strict"
    loose = index_dir.parent / "synth-loose"
    config = {"top_k": 2, "question_source": "templates"}
    synth_folder(index_dir, loose, config, batch_size=4)
    synth_folder(index_dir, strict, {**config, "min_question_similarity": 0.95}, batch_size=4)
    off = [r for r in read_jsonl(strict / "rejects.jsonl") if r["reason"] == "question_off_unit"]
    off_before = [r for r in read_jsonl(loose / "rejects.jsonl") if r["reason"] == "question_off_unit"]
    before = read(loose)
    kept = {r["messages"][0]["content"] for r in before} | {json.loads(r["detail"])["question"] for r in off_before}
    assert len(off) > len(off_before)  # every pair kept before is kept or off unit now
    assert len(read(strict)) + len(off) == len(before) + len(off_before)
    for reject in off:
        detail = json.loads(reject["detail"])
        assert detail["rank"] is not None and detail["similarity"] < 0.95 and detail["question"] in kept


def test_a_prompt_over_the_context_window_is_a_generation_error_with_its_message(index_dir):
    out = index_dir.parent / "synth-overflow"
    synth_folder(index_dir, out, {**ABSTRACTIVE, "max_retries": 0, "llm": {"n_ctx": 128}}, batch_size=4)
    rejects = read_jsonl(out / "rejects.jsonl")
    assert rejects and not read(out)
    assert {r["reason"] for r in rejects} == {"generation_error"}
    assert all("context window" in r["detail"] for r in rejects), rejects[0]["detail"]


def test_index_of_the_run_answers_questions_by_retrieval(index_dir):
    hits = ChunkIndex(index_dir / "chroma", create=False).query(["When should a tourniquet be used?"], k=2)[0]
    assert any("tourniquet" in h.text.lower() for h in hits)


def test_parsers_reject_malformed_and_copied_output():
    examples = ("How should a bee stinger be removed?",)
    assert parse_questions('{"questions": ["How is a tourniquet applied?"]}', 2, 10) == ["How is a tourniquet applied?"]
    assert parse_questions('{"questions": ["How should a bee stinger be removed?"]}', 1, 10, examples) is None
    assert parse_questions('{"questions": ["no question mark"]}', 1, 5) is None
    assert parse_questions('{"questions": "x"}', 1, 5) is None and parse_questions("not json", 1, 5) is None
    assert parse_answer('{"answer": "Apply it\\nabove the wound.", "sources": [1, 7]}', 3) == \
        ("Apply it above the wound.", [1])
    assert parse_answer('{"answer": "Raw\nnewline", "sources": []}', 3) == ("Raw newline", [])
    assert parse_answer('{"answer": "cut off', 3) is None


def test_an_edited_prompt_file_changes_the_stage_fingerprint(tmp_path):
    from importlib import resources

    from curate.rag.synth import SynthQA

    prompt = tmp_path / "my_prompt.yaml"
    prompt.write_text((resources.files("curate") / "prompts" / "synth_qa.v2.yaml").read_text())
    before = SynthQA({"prompt": str(prompt)}).fingerprint_extra()
    prompt.write_text(prompt.read_text().replace("first responder", "paramedic"))
    assert SynthQA({"prompt": str(prompt)}).fingerprint_extra() != before
