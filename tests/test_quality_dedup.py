"""The dedup stage on real FirstAidQA pairs with injected near-duplicates at known positions.

The injection and the brute-force ground truth come from ``benchmarks/dedup.py`` (so the benchmark is exercised
too): 200 pairs are copied with one or two word edits (swap, substitution, deletion, insertion) and case and
punctuation changes, each copy placed somewhere after its original.
"""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from curate.quality.dedup import Dedup
from curate.quality.minhash import MinHasher, NearIndex, jaccard, lsh_params
from curate.schema import COLUMNS, make_page, make_qa
from curate.stage import DROP, DROP_DETAIL, columns

FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"
_spec = importlib.util.spec_from_file_location("bench_dedup", Path(__file__).parents[1] / "benchmarks" / "dedup.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def run(stage: Dedup, rows: list[dict], batch_size: int = 200) -> tuple[list, list]:
    reasons, details = [], []
    for start in range(0, len(rows), batch_size):
        out = stage(columns(rows[start:start + batch_size], COLUMNS))
        reasons += out[DROP]
        details += out[DROP_DETAIL]
    return reasons, details


@pytest.fixture(scope="module")
def injected(realdata):
    docs, origin = bench.inject_near_duplicates(bench.load_pairs(realdata / FIRSTAID), 200, seed=7, max_edits=2)
    rows = bench.qa_rows(docs)
    truth = bench.true_duplicates([f"{q}\n{a}" for q, a in docs], 3, 0.7)
    reasons, details = run(Dedup(), rows)
    return rows, origin, truth, reasons, details


def test_recovers_injected_near_duplicates(injected):
    rows, origin, truth, reasons, _ = injected
    flagged = {i for i, r in enumerate(reasons) if r}
    recall, precision = bench.scores(flagged, truth)
    assert len(rows) == 5550 + 200
    assert recall >= 0.95 and precision >= 0.95, (recall, precision)
    copies = [c for c in origin if c in truth]
    assert len(copies) >= 190                                   # the edits keep nearly every copy above 0.7
    assert sum(c in flagged for c in copies) / len(copies) >= 0.95
    counts = Counter(r for r in reasons if r)
    assert counts["exact_duplicate"] >= 41 and counts["near_duplicate"] >= 150   # FirstAidQA repeats 41 pairs


def test_drops_the_copy_and_names_the_original(injected):
    rows, origin, truth, reasons, details = injected
    originals = {o for o in origin.values() if o not in truth}
    assert not any(reasons[o] for o in originals)
    named = 0
    for copy, original in origin.items():
        if reasons[copy] == "near_duplicate" and original in originals:
            detail = json.loads(details[copy])
            assert detail["jaccard"] >= 0.7
            named += detail["duplicate_of"] == rows[original]["id"]
    assert named >= 0.95 * sum(1 for c, o in origin.items() if c in truth and o in originals)


def test_is_deterministic_across_batch_sizes(injected):
    rows, _, _, reasons, details = injected
    assert run(Dedup(), rows, batch_size=777) == (reasons, details)


def test_works_across_sources_and_kinds():
    hub = make_qa(question="How do I treat a minor burn?", answer="Cool the burn under cool running water for "
                  "at least 10 minutes, then cover it loosely with cling film.", source="hub", license="x",
                  origin="hub", locator="1")
    synth = make_qa(question="how do i treat a minor burn", answer="Cool the burn under cool running water for at "
                    "least 10 minutes; then cover it loosely with cling film!", source="synth", license=None,
                    origin="fm", locator="p3")
    other_answer = make_qa(question="How do I treat a minor burn?", answer="Hold it under cold water.",
                           source="synth", license=None, origin="fm", locator="p4")
    page = make_page(text="Cool the burn under cool running water.", doc_id="d", page=1, source="fm",
                     license=None, origin="fm")
    image_like = {**make_page(text="", doc_id="d", page=2, source="fm", license=None, origin="fm"), "kind": "image",
                  "caption": "Cool the burn under cool running water."}
    stage = Dedup()
    out = stage(columns([hub, synth, other_answer, page, image_like], COLUMNS))
    assert out[DROP] == [None, "exact_duplicate", None, None, None]
    assert json.loads(out[DROP_DETAIL][1]) == {"duplicate_of": hub["id"]}
    assert stage.counters["not_compared"] == 1
    by_question = Dedup({"field": "question"})(columns([hub, synth, other_answer], COLUMNS))
    assert by_question[DROP] == [None, "exact_duplicate", "exact_duplicate"]


def test_semantic_duplicates_are_optional():
    texts = [("How do I stop a nosebleed?", "Lean forward and pinch the soft part of the nose for ten minutes."),
             ("How can I stop a nose bleed?", "Pinch the soft part of your nose and lean forwards for about ten "
              "minutes."),
             ("How do I treat a bee sting?", "Scrape the sting out sideways and put a cold pack on the area.")]
    rows = [make_qa(question=q, answer=a, source="t", license=None, origin="t", locator=str(i))
            for i, (q, a) in enumerate(texts)]
    assert Dedup()(columns(rows, COLUMNS))[DROP] == [None, None, None]      # shingle Jaccard is only 0.125
    out = Dedup({"semantic": True, "semantic_threshold": 0.85})(columns(rows, COLUMNS))
    assert out[DROP] == [None, "semantic_duplicate", None]
    assert json.loads(out[DROP_DETAIL][1])["duplicate_of"] == rows[0]["id"]


def test_minhash_estimates_jaccard_and_lsh_params_follow_the_threshold():
    hasher = MinHasher(num_perm=256, shingle_words=2, seed=3)
    a = "the casualty is not breathing so continue rescue breathing and check the pulse again"
    b = "the casualty is not breathing so continue rescue breathing and check the pulse once more"
    sets = hasher.shingle_sets([a, b, "", "short"])
    true = jaccard(sets[0], sets[1])
    sigs = hasher.signatures(sets)
    assert abs((sigs[0] == sigs[1]).mean() - true) < 0.1
    assert len(sets[2]) == 0 and (sigs[2] == np.uint32(0xFFFFFFFF)).all() and len(sets[3]) == 1
    assert lsh_params(0.7, 128) == (14, 9) and lsh_params(0.7, 128, 0.2, 0.8) == (18, 7)
    index = NearIndex(0.7, confirm="estimate")
    sketches = index.sketch([a, b])
    assert index.best_match(sketches, 0) is None
    index.add(sketches, 0)
    assert index.best_match(sketches, 1)[0] == 0


def test_shingle_sets_of_texts_without_words_are_empty():
    from curate.quality.minhash import MinHasher

    sets = MinHasher().shingle_sets(["", "  ", "!!"])
    assert [len(s) for s in sets] == [0, 0, 0]
    mixed = MinHasher().shingle_sets(["", "apply firm direct pressure", ""])
    assert [len(s) for s in mixed] == [0, 2, 0]


def test_vqa_pairs_are_compared_per_image(realdata):
    """The same template pair on two different real CT images is two pairs; the same pair twice on one image is one."""
    from curate.ingest import dicom
    from curate.ingest.base import SourceSpec
    from curate.rag.vqa import SynthVQA

    images = []
    for name in ("cp_ctimage.dcm", "dwv_dicompyler-ct.0.dcm"):
        spec = SourceSpec(name="ct", kind="dicom", license="test", path=realdata / "dicom" / name)
        images += [r for r in dicom.read(spec, dicom.Options()) if isinstance(r, dict)]
    pairs = SynthVQA({"templates": ["modality"]})(columns(images, COLUMNS))
    assert len(pairs["id"]) == 2 and pairs["messages"][0] == pairs["messages"][1]  # identical text, two images
    assert pairs["image"][0]["bytes"] != pairs["image"][1]["bytes"]
    repeated = {k: v + v[:1] for k, v in pairs.items() if k in COLUMNS}
    out = Dedup({"kinds": ["vqa"]})(columns([dict(zip(repeated, values)) for values in zip(*repeated.values())],
                                            COLUMNS))
    assert out[DROP] == [None, None, "exact_duplicate"]
    assert json.loads(out[DROP_DETAIL][2]) == {"duplicate_of": pairs["id"][0]}
