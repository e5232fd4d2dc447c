"""Chunking and the chromadb index on real PDFs (FM 4-25.11, WHO PFA), through the real runner."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import yaml

from curate.embed import load_embedder
from curate.orchestrate import run_plan
from curate.pipeline import load_plan
from curate.rag.index import ChunkIndex, IndexUnavailable


@pytest.fixture(scope="module")
def run(tmp_path_factory, realdata):
    tmp = tmp_path_factory.mktemp("rag")
    path = tmp / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "rag", "sources": [
        {"source": "pdf", "name": "fm", "path": str(realdata / "pdf/us_army_FM4-25.11_first_aid.pdf"),
         "license": "public-domain", "limit": 24},
        {"source": "pdf", "name": "pfa", "path": str(realdata / "pdf/who_psychological_first_aid_field_workers_2011.pdf"),
         "license": "all-rights-reserved", "limit": 8},
    ], "stages": [{"stage": "chunk", "size": 128, "overlap": 24}, {"stage": "index"}]}))
    report = run_plan(load_plan(path, tmp / "run"))
    return tmp / "run", report


def read(folder):
    return pq.read_table(sorted(folder.glob("part-*.parquet"))).to_pylist()


def test_chunks_are_page_aware_and_sized(run):
    run_dir, report = run
    pages = read(run_dir / "01-ingest")
    chunks = read(run_dir / "02-chunk")
    assert {c["kind"] for c in chunks} == {"chunk"} and len(chunks) > len(pages)
    tok = load_embedder().tokenizer
    by_doc = {}
    for p in pages:
        by_doc.setdefault((p["source"], p["doc_id"]), {})[p["page"]] = p["text"]
    for c in chunks:
        doc_pages = by_doc[(c["source"], c["doc_id"])]  # never crosses documents
        assert c["page"] <= c["page_end"] and c["page"] in doc_pages and c["page_end"] in doc_pages
        assert len(tok(c["text"], add_special_tokens=False)["input_ids"]) <= 128 + 2
        span = "\n\n".join(doc_pages[n] for n in sorted(doc_pages) if c["page"] <= n <= c["page_end"])
        assert c["text"] in span
    # neighbouring chunks overlap, and some chunk spans a page break
    fm = [c for c in chunks if c["source"] == "fm"]
    assert any(a["text"][-30:] in b["text"] for a, b in zip(fm, fm[1:]))
    assert any(c["page_end"] > c["page"] for c in chunks)
    assert report.stages[2].counters["indexed"] == len(chunks)


def test_a_paragraph_printed_twice_on_a_page_is_chunked_once(tmp_path):
    # MedQuAD's CDC documents repeat one answer under several questions: the same window twice in one page
    from curate.rag.chunk import Chunk
    from curate.schema import make_page

    para = ("Wash your hands with soap and clean running water for at least 20 seconds before preparing food. "
            "Dry them with a clean towel or let them air dry. ") * 6
    text = "\n\n".join([para, "Cook meat to a safe internal temperature.", para])
    page = make_page(text=text, doc_id="doc", page=1, source="s", license="cc-by-4.0", origin="doc.xml")
    chunker = Chunk({"size": 64, "overlap": 8})
    chunker.setup()
    out = chunker.process_batch({k: [v] for k, v in page.items()})
    ids = [i for i, kind in zip(out["id"], out["kind"]) if kind == "chunk"]
    assert len(ids) == len(set(ids)) and chunker.counters["repeated_chunks"] > 0
    assert any("Cook meat" in t for t in out["text"])
    chunks = [dict(zip(out, row)) for row in zip(*out.values())]
    # the index leaves out an id repeated within one add, as chromadb's upsert refuses it
    index = ChunkIndex(tmp_path / "index", create=True)
    assert index.add(chunks + chunks[:2]) == len(chunks) == index.count()


def test_retrieval_by_question_finds_the_right_passage(run):
    run_dir, _ = run
    index = ChunkIndex(run_dir / "index", create=False)
    chunks = {c["id"]: c for c in read(run_dir / "02-chunk")}
    assert index.count() == len(chunks)
    hits = index.query(["How do I apply a tourniquet to stop bleeding?",
                        "How should I talk to a person in distress after a disaster?"], k=3)
    assert any("tourniquet" in h.text.lower() for h in hits[0])
    assert hits[0][0].source == "fm" and hits[1][0].source == "pfa"
    assert all(h.id in chunks and h.text == chunks[h.id]["text"] for hs in hits for h in hs)


def test_reindexing_is_idempotent_and_model_is_checked(run, tmp_path):
    run_dir, _ = run
    chunks = read(run_dir / "02-chunk")[:40]
    index = ChunkIndex(tmp_path / "idx")
    index.add(chunks)
    index.add(chunks[:10])
    assert index.count() == len(chunks)
    with pytest.raises(IndexUnavailable, match="embedding model"):
        ChunkIndex(tmp_path / "idx", embedding_model="other-model", create=False)
    with pytest.raises(IndexUnavailable, match="no index"):
        ChunkIndex(tmp_path / "missing", create=False)
