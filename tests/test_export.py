"""Export on real data: formats and their inverses, leakage-safe splits, the artifact folder and its dataset card.

The main fixture runs the real runner over PubMedQA (MIT), VQA-RAD (CC0; 477 questions on the 40 images present) and
20 pages of the WHO psychological first aid guide (CC BY-NC-SA 3.0 IGO, as realdata/PROVENANCE.md lists it), with a
test stage that asks two questions about each page (so several qa rows share a page, and pages four at a time share
a cited chunk). The export must then keep every page, chunk and image inside one split, choose cc-by-nc-sa-4.0,
count the 20 page rows as skipped, and load with ``datasets.load_dataset`` with its images decoding.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from curate.cli import main
from curate.deliver.specs import ExportSpec
from curate.deliver.steps import ExportStep
from curate.executors.serial import SerialExecutor
from curate.export.artifact import ExportError, ExportOptions, NothingToExport, export, resolve_input
from curate.export.formats import CAPTION_PROMPT, CONTEXT_MODES, FORMATS, REASONING_MODES, NotSFT, example, to_messages
from curate.export.licenses import decide
from curate.export.splits import assign_splits, group_keys, parse_fractions
from curate.ingest import vqa
from curate.ingest.base import SourceSpec
from curate.io import write_json, write_parquet
from curate.orchestrate import run_plan
from curate.pipeline import load_plan
from curate.progress import Progress
from curate.rowsteps import ingest
from curate.schema import arrow_schema_for, make_image, make_page, make_qa
from curate.stage import Stage, columns, register, rows
from curate.steps import Context, run_step

FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"
WHO_PFA = "pdf/who_psychological_first_aid_field_workers_2011.pdf"
CHUNK_PAGES = 4


class PageQuestions(Stage):
    """Test stage: keeps every row and adds two qa rows per page, each citing the 4-page chunk its page is in.

    Consumes ``kind``, ``text``, ``doc_id``, ``page``; produces ``citations`` (list of chunk ids).
    """

    name = "page_questions"
    inputs = ("kind", "text", "doc_id", "page")
    outputs = {"citations": pa.list_(pa.string())}

    def process_batch(self, batch):
        out = rows(batch)
        for row in [r for r in out if r["kind"] == "page"]:
            for template in ("What does page {page} of {doc} say?", "Summarise page {page} of {doc}."):
                qa = make_qa(question=template.format(page=row["page"], doc=row["doc_id"]),
                             answer=row["text"][:400], source=row["source"], license=row["license"],
                             origin=row["provenance"]["origin"], locator=row["provenance"]["locator"])
                qa.update(doc_id=row["doc_id"], page=row["page"],
                          citations=[f"{row['doc_id']}#chunk{(row['page'] - 1) // CHUNK_PAGES}"])
                out.append(qa)
        return columns(out, list(batch) + ["citations"])


register("page_questions", f"{__name__}:PageQuestions")


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, realdata) -> tuple[Path, Path]:
    """(run folder, pipeline file) of the real runner over the three sources and the page_questions stage."""
    tmp = tmp_path_factory.mktemp("mixed")
    spec = {"name": "mixed-export", "batch_size": 200, "sources": [
        {"source": "pubmedqa-ori-pqal", "path": str(realdata / "qa/pubmedqa_ori_pqal.json"), "limit": 60},
        {"source": "vqa-rad", "path": str(realdata / "vqa/vqa_rad"), "options": {"split": "all"}},
        {"source": "pdf", "name": "who-pfa", "path": str(realdata / WHO_PFA), "license": "CC BY-NC-SA 3.0 IGO",
         "attribution": "WHO, War Trauma Foundation and World Vision International (2011)", "limit": 20,
         "options": {"engine": "pypdfium2"}},
    ], "stages": [{"stage": "page_questions"}]}
    pipeline = tmp / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump(spec))
    run_plan(load_plan(pipeline, tmp / "run"))
    return tmp / "run", pipeline


@pytest.fixture(scope="module")
def exported(mixed_run, tmp_path_factory) -> Path:
    run, pipeline = mixed_run
    out = tmp_path_factory.mktemp("artifact") / "ds"
    export(run, out, ExportOptions(pipeline=pipeline, seed=0))
    return out


def split_tables(out: Path) -> dict[str, list[dict]]:
    tables = defaultdict(list)
    for path in sorted((out / "data").glob("*.parquet")):
        tables[path.name.split("-")[0]] += pq.read_table(path).to_pylist()
    return dict(tables)


def stage_rows(folder: Path) -> list[dict]:
    return [r for f in sorted(folder.glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]


def front_matter(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


# --- formats -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_rows(realdata) -> dict[str, dict]:
    """Real rows of every SFT shape: qa with system and reasoning, qa with context, vqa, captioned image."""
    item = json.loads((realdata / FIRSTAID).read_text())[0]
    qa = make_qa(question=item["question"], answer=item["answer"], system="You are a first-aid instructor.",
                 reasoning="The casualty must be safe before anything else.", source="firstaidqa",
                 license="cc-by-4.0", origin=FIRSTAID, locator="0")
    with_context = {**make_qa(question=item["question"], answer=item["answer"], source="firstaidqa",
                              license="cc-by-4.0", origin=FIRSTAID, locator="0"),
                    "context": ["Move a casualty only when the scene is unsafe.", "Call for help first."]}
    spec = SourceSpec(name="vqa_rad", kind="vqa", license="CC0-1.0", path=realdata / "vqa/vqa_rad")
    vqa_row = next(r for r in vqa.read(spec, vqa.Options()) if isinstance(r, dict))
    image = make_image(image_bytes=vqa_row["image"]["bytes"], image_name=str(realdata / "vqa/vqa_rad/images/x.jpg"),
                       caption="Radiograph from VQA-RAD.", source="vqa_rad", license="CC0-1.0", origin="vqa_rad",
                       locator="x")
    return {"qa": qa, "context": with_context, "vqa": vqa_row, "image": image}


def expected_messages(row: dict, fmt: str, context: str) -> list[dict]:
    messages = [dict(m) for m in row["messages"] or [{"role": "user", "content": CAPTION_PROMPT},
                                                      {"role": "assistant", "content": row["caption"]}]]
    if row.get("context") and context == "include":
        first_user = next(m for m in messages if m["role"] == "user")
        first_user["content"] = "Context:\n" + "\n\n".join(row["context"]) + "\n\nQuestion: " + first_user["content"]
    return [m for m in messages if not (fmt == "medrescue" and m["role"] == "system")]


@pytest.mark.parametrize("context", CONTEXT_MODES)
@pytest.mark.parametrize("mode", REASONING_MODES)
@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("kind", ["qa", "context", "vqa", "image"])
def test_format_round_trip(sample_rows, fmt, mode, kind, context):
    row, form = sample_rows[kind], FORMATS[fmt]
    has_image = kind in ("vqa", "image")
    if has_image and not form.images:
        with pytest.raises(NotSFT, match="image_in_text_format"):
            form.to(row, reasoning=mode, context=context)
        return
    record = form.to(row, reasoning=mode, multimodal=has_image, context=context)
    back = form.back(record)
    assert back["messages"] == expected_messages(row, fmt, context)
    assert back["reasoning"] == (row["reasoning"] if mode != "drop" else None)
    if has_image:
        assert back["image"] == {"bytes": row["image"]["bytes"], "path": Path(row["image"]["path"]).name}
    else:
        assert back["image"] is None
    # the record fits the format's declared columns exactly
    table = pa.Table.from_pylist([record], schema=form.features(multimodal=has_image, reasoning=mode).arrow_schema)
    assert table.column_names == list(record)


def test_reasoning_layouts(sample_rows):
    row = sample_rows["qa"]
    answer, reasoning = row["messages"][-1]["content"], row["reasoning"]
    think = to_messages(row, reasoning="think_tags")
    assert think["messages"][-1]["content"] == f"<think>\n{reasoning}\n</think>\n\n{answer}"
    field = to_messages(row, reasoning="field")
    assert field["messages"][-1]["content"] == answer and field["reasoning"] == reasoning
    assert "reasoning" not in to_messages(row, reasoning="drop")


def test_vqa_messages_use_typed_parts_and_an_images_column(sample_rows):
    record = to_messages(sample_rows["vqa"])
    user, assistant = record["messages"]
    assert user["content"][0] == {"type": "image", "text": None}
    assert user["content"][1] == {"type": "text", "text": sample_rows["vqa"]["messages"][0]["content"]}
    assert assistant["content"] == [{"type": "text", "text": sample_rows["vqa"]["messages"][1]["content"]}]
    assert len(record["images"]) == 1 and record["images"][0]["path"] == sample_rows["vqa"]["image"]["path"]
    # a text row in a multimodal export gets the same layout, with no image
    text = to_messages(sample_rows["qa"], multimodal=True)
    assert text["images"] == [] and all(p["type"] == "text" for m in text["messages"] for p in m["content"])


def test_rows_that_are_not_sft_examples(sample_rows):
    page = make_page(text="Look, listen, link.", doc_id="who", page=3, source="who", license=None, origin="x")
    system, *turns = sample_rows["qa"]["messages"]
    two_turns = [system, *turns, *turns]
    reasons = {}
    for name, row in {"page": page, "chunk": {**page, "kind": "chunk"},
                      "uncaptioned": {**sample_rows["image"], "caption": None},
                      "unanswered": {**sample_rows["qa"], "messages": [{"role": "user", "content": "Why?"},
                                                                       {"role": "assistant", "content": " "}]},
                      "alpaca_multi_turn": {**sample_rows["qa"], "messages": two_turns}}.items():
        with pytest.raises(NotSFT) as caught:
            FORMATS["alpaca"].to(row) if name.startswith("alpaca") else example(row)
        reasons[name] = caught.value.reason
    assert reasons == {"page": "page", "chunk": "chunk", "uncaptioned": "no_conversation",
                       "unanswered": "empty_answer", "alpaca_multi_turn": "multi_turn"}


# --- splits --------------------------------------------------------------------------------------------------------

def test_split_assignment_is_seeded_sized_and_order_free():
    keys = [[f"row:{i}"] for i in range(2000)]
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    first = assign_splits(keys, fractions, seed=1)
    sizes = Counter(first)
    assert abs(sizes["train"] - 1600) <= 2 and abs(sizes["validation"] - 200) <= 2
    assert assign_splits(keys, fractions, seed=1) == first
    order = list(range(len(keys)))
    random.Random(0).shuffle(order)
    shuffled = assign_splits([keys[i] for i in order], fractions, seed=1)
    assert [shuffled[order.index(i)] for i in range(len(keys))] == first
    assert assign_splits(keys, fractions, seed=2) != first


def test_groups_join_transitively_through_pages_chunks_and_images():
    keys = [
        group_keys({"id": "a", "doc_id": "who", "page": 3, "image": None, "meta": None}),
        group_keys({"id": "b", "meta": json.dumps({"doc_id": "who", "page": 3, "chunk_id": "c7"})}),
        group_keys({"id": "c", "citations": ["c7"], "image": {"bytes": b"png", "path": "x.png"}}),
        group_keys({"id": "d", "image": {"bytes": b"png", "path": "other-name.png"}}),
        group_keys({"id": "e", "doc_id": "who", "page": 2, "page_end": 3}),
    ]
    for seed in range(20):
        assert len(set(assign_splits(keys, {"train": 0.5, "test": 0.5}, seed))) == 1


def test_bad_fractions_are_refused():
    assert parse_fractions("train=0.8, test=0.2") == {"train": 0.8, "test": 0.2}
    for text in ("train=0.8,test=0.1", "train=1.2,test=-0.2", "train", "train=x", "bad name=1", ""):
        with pytest.raises(ValueError):
            parse_fractions(text)


def test_export_never_lets_a_page_chunk_or_image_straddle_splits(mixed_run, exported):
    run, _ = mixed_run
    source_rows = defaultdict(list)
    for row in stage_rows(run / "02-page_questions"):
        source_rows[row["id"]].append(row)
    splits_of_key, rows_of_key = defaultdict(set), Counter()
    for split, records in split_tables(exported).items():
        for record in records:
            for key in {k for row in source_rows[record["id"]] for k in group_keys(row)}:
                splits_of_key[key].add(split)
                rows_of_key[key] += 1
    straddling = {k: s for k, s in splits_of_key.items() if len(s) > 1}
    assert not straddling
    # the data really has shared groups: images with many questions, pages with two, chunks over four pages
    shared = Counter(k.split(":")[0] for k, n in rows_of_key.items() if n > 1)
    assert shared["image"] >= 30 and shared["page"] >= 15 and shared["chunk"] >= 4
    assert len(split_tables(exported)) == 3


# --- artifact, loading, card ---------------------------------------------------------------------------------------

def test_run_folder_resolves_to_its_last_stage_and_sources(mixed_run):
    run, _ = mixed_run
    found = resolve_input(run)
    assert found.rows_dir == run / "02-page_questions" and found.run_dir == run
    assert [s["name"] for s in found.sources] == ["pubmedqa-ori-pqal", "vqa-rad", "who-pfa"]
    assert [s["dirname"] for s in found.stages] == ["01-ingest", "02-page_questions"]
    assert resolve_input(run / "01-ingest").rows_dir == run / "01-ingest"


def test_artifact_loads_with_load_dataset_and_images_decode(exported, tmp_path, realdata):
    files = sorted(p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file())
    assert files == ["README.md", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet",
                     "data/validation-00000-of-00001.parquet", "pipeline.yaml", "report.json"]
    ds = datasets.load_dataset(str(exported), cache_dir=str(tmp_path / "cache"))
    tables = split_tables(exported)
    assert {s: ds[s].num_rows for s in ds} == {s: len(t) for s, t in tables.items()}
    assert isinstance(ds["train"].features["images"], datasets.List)
    assert isinstance(ds["train"].features["images"].feature, datasets.Image)
    for split in ("validation", "test"):
        decoded = [r for r in ds[split] if r["images"]]
        assert decoded
        for loaded, stored in zip(decoded, [r for r in tables[split] if r["images"]]):
            original = Image.open(realdata / "vqa/vqa_rad/images" / stored["images"][0]["path"])
            assert loaded["images"][0].size == original.size and loaded["id"] == stored["id"]
            assert loaded["messages"][0]["content"][0]["type"] == "image"


def test_card_licence_counts_and_contents(exported, mixed_run, realdata):
    run, pipeline = mixed_run
    card = (exported / "README.md").read_text()
    meta = front_matter(card)
    tables = split_tables(exported)
    assert meta["license"] == "cc-by-nc-sa-4.0"
    assert meta["size_categories"] == ["n<1K"] and meta["language"] == ["en"]
    assert {"visual-question-answering", "question-answering"} <= set(meta["task_categories"])
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": s, "path": f"data/{s}-*"} for s in ("train", "validation", "test")]}]
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == \
        {s: len(t) for s, t in tables.items()}
    per_source = Counter(r["source"] for t in tables.values() for r in t)
    assert per_source == {"vqa-rad": 477, "pubmedqa-ori-pqal": 60, "who-pfa": 40}
    for source, n in per_source.items():
        line = next(line for line in card.splitlines() if line.startswith(f"| {source} |"))
        assert line.rstrip(" |").endswith(f"| {n:,}")
    assert "| export | skipped: page | 20 |" in card
    assert "| ingest | missing_image | 3,038 |" in card
    assert "page_questions" in card and "Medical disclaimer" in card and "not for clinical use" in card
    assert "cc-by-nc-sa-3.0-igo material is shared under cc-by-nc-sa-4.0" in card
    assert "<image " in card and str(realdata) not in card
    shipped = yaml.safe_load((exported / "pipeline.yaml").read_text())
    assert shipped == {**yaml.safe_load(pipeline.read_text()), "sources": [
        {**s, "path": "<local>/" + Path(s["path"]).name} for s in yaml.safe_load(pipeline.read_text())["sources"]]}
    report = json.loads((exported / "report.json").read_text())
    assert report["splits"] == {s: len(t) for s, t in tables.items()} and report["skipped"] == {"page": 20}
    assert report["license"]["per_source"]["who-pfa"] == "cc-by-nc-sa-3.0-igo"
    assert report["run"]["rows_out"] == sum(1 for _ in stage_rows(run / "02-page_questions"))


def test_licence_choice_table():
    assert decide({"a": "mit", "b": "CC0-1.0", "c": "CC BY-NC-SA 4.0"}).license == "cc-by-nc-sa-4.0"
    assert decide({"a": "mit", "b": "cc-by-4.0"}).license == "cc-by-4.0"
    assert decide({"a": "mit", "b": "cc0-1.0"}).license == "mit"
    mixed = decide({"a": "cc-by-sa-4.0", "b": "cc-by-nc-4.0"})
    assert mixed.license == "cc-by-nc-sa-4.0" and mixed.warnings
    reserved = decide({"who": "all-rights-reserved", "b": "mit"})
    assert reserved.license == "other" and "may not be redistributed" in reserved.warnings[0]


@pytest.fixture(scope="module")
def qa_and_vqa_folder(tmp_path_factory, realdata) -> Path:
    """A stage folder of real FirstAidQA pairs (with a reasoning line each) and VQA-RAD questions."""
    folder = tmp_path_factory.mktemp("rows") / "02-stage"
    folder.mkdir()
    items = json.loads((realdata / FIRSTAID).read_text())[:40]
    qa = [make_qa(question=i["question"], answer=i["answer"], reasoning=f"Key point: {i['answer'].split('.')[0]}.",
                  source="firstaidqa", license="cc-by-4.0", origin=FIRSTAID, locator=str(n))
          for n, i in enumerate(items)]
    spec = SourceSpec(name="vqa_rad", kind="vqa", license="CC0-1.0", path=realdata / "vqa/vqa_rad")
    images = [r for r in vqa.read(spec, vqa.Options()) if isinstance(r, dict)][:30]
    schema = arrow_schema_for()
    write_parquet(folder / "part-00000.parquet", columns(qa + images, schema.names), schema)
    write_json(folder / "_stage.json", {"stage": "test", "config": {},
                                        "stats": {"rows_in": 70, "rows_out": 70, "dropped": {}}})
    return folder


@pytest.mark.parametrize("fmt,mode", [("alpaca", "think_tags"), ("sharegpt", "field"), ("medrescue", "drop")])
def test_each_format_exports_and_loads(qa_and_vqa_folder, tmp_path, fmt, mode):
    out = tmp_path / fmt
    result = export(qa_and_vqa_folder, out, ExportOptions(format=fmt, reasoning=mode,
                                                          splits={"train": 0.8, "test": 0.2}))
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "test"} and sum(ds[s].num_rows for s in ds) == sum(result.splits.values())
    rows = [r for s in ds for r in ds[s]]
    back = [FORMATS[fmt].back(r) for r in rows]
    qa_back = [b for b, r in zip(back, rows) if r["source"] == "firstaidqa"]
    assert len(qa_back) == 40
    assert all(b["reasoning"] and b["reasoning"].startswith("Key point") for b in qa_back) == (mode != "drop")
    if fmt == "medrescue":
        assert result.skipped == {"image_in_text_format": 30} and len(rows) == 40
    else:
        with_images = [r for r in rows if r["images"]]
        assert len(with_images) == 30 and all(isinstance(r["images"][0], Image.Image) for r in with_images)
    if mode == "think_tags":
        assert all(r["output"].startswith("<think>\n") for r in rows if r["source"] == "firstaidqa")


def test_save_to_disk_form_sits_beside_the_parquet(qa_and_vqa_folder, tmp_path):
    out = tmp_path / "ds"
    export(qa_and_vqa_folder, out, ExportOptions(save_to_disk=True, splits={"train": 0.5, "test": 0.5}))
    on_disk = datasets.load_from_disk(str(out / "arrow"))
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert {s: on_disk[s].num_rows for s in on_disk} == {s: loaded[s].num_rows for s in loaded}


def test_unknown_licence_makes_the_card_say_other(tmp_path, realdata):
    folder = tmp_path / "01-ingest"
    ingest([SourceSpec(name="firstaid-unlabelled", kind="hf_qa", path=realdata / FIRSTAID, limit=30)], folder)
    export(folder, tmp_path / "ds", ExportOptions(splits={"train": 1.0}))
    card = (tmp_path / "ds" / "README.md").read_text()
    assert front_matter(card)["license"] == "other"
    assert "> **Warning:** unknown licence for source(s) firstaid-unlabelled" in card


def test_export_cli_and_its_errors(qa_and_vqa_folder, tmp_path, realdata, capsys):
    out = tmp_path / "ds"
    assert main(["export", str(qa_and_vqa_folder), "-o", str(out), "--format", "sharegpt",
                 "--split", "train=0.7,validation=0.3", "--seed", "3"]) == 0
    assert "validation" in capsys.readouterr().out and (out / "README.md").exists()
    assert main(["export", str(qa_and_vqa_folder), "-o", str(out)]) == 2  # exists, no --overwrite
    assert main(["export", str(qa_and_vqa_folder), "-o", str(out), "--overwrite", "--format", "alpaca"]) == 0
    assert "instruction" in pq.read_schema(next((out / "data").glob("train-*"))).names
    assert main(["export", str(tmp_path / "missing"), "-o", str(tmp_path / "x")]) == 2
    assert main(["export", str(qa_and_vqa_folder), "-o", str(tmp_path / "y"), "--split", "train=0.5"]) == 2
    assert main(["export", str(qa_and_vqa_folder), "-o", str(tmp_path / "z"), "--format", "csv"]) == 2
    assert main(["export", str(qa_and_vqa_folder), "-o", str(qa_and_vqa_folder.parent), "--overwrite"]) == 2
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    assert main(["export", str(qa_and_vqa_folder), "-o", str(tmp_path / "notes"), "--overwrite"]) == 2
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    assert (qa_and_vqa_folder / "part-00000.parquet").exists()
    pages = tmp_path / "pages"
    ingest([SourceSpec(name="who", kind="pdf", path=realdata / WHO_PFA, limit=3, options={"engine": "pypdfium2"})],
           pages)
    assert main(["export", str(pages), "-o", str(tmp_path / "p")]) == 1
    assert "page" in capsys.readouterr().err and not (tmp_path / "p").exists()
    with pytest.raises(NothingToExport):
        export(pages, tmp_path / "p")
    with pytest.raises(ExportError, match="neither a run folder"):
        export(tmp_path, tmp_path / "q")


@pytest.fixture(scope="module")
def generated_folder(tmp_path_factory, realdata) -> Path:
    """Rows shaped like ``synth_qa`` output (real FirstAidQA text): a context column of retrieved passages, citations
    [{chunk_id, ...}], generator/prompt meta; three questions per chunk."""
    items = json.loads((realdata / FIRSTAID).read_text())[:12]
    citation = pa.struct([("chunk_id", pa.string()), ("doc_id", pa.string()), ("page", pa.int32()),
                          ("page_end", pa.int32())])
    schema = arrow_schema_for({"context": pa.string(), "citations": pa.list_(citation)})
    generated = []
    for i, item in enumerate(items):
        row = make_qa(question=item["question"], answer=item["answer"], source="firstaidqa", license="cc-by-4.0",
                      origin=FIRSTAID, locator=f"chunk=c{i // 3}#q{i % 3}",
                      meta={"chunk_id": f"c{i // 3}", "generator": {"backend": "llamacpp", "model": "gemma-3-270m"},
                            "prompt": {"name": "synth_qa.v1", "version": 1, "sha256": "0123456789abcdef"}})
        row["context"] = f"[1] {items[(i // 3) * 3]['answer']}"
        row["citations"] = [{"chunk_id": f"c{i // 3}", "doc_id": "fm", "page": i // 3 + 1, "page_end": i // 3 + 1}]
        generated.append(row)
    folder = tmp_path_factory.mktemp("generated") / "03-synth_qa"
    folder.mkdir()
    write_parquet(folder / "part-00000.parquet", columns(generated, schema.names), schema)
    write_json(folder / "_stage.json", {"stage": "synth_qa", "config": {"top_k": 1},
                                        "stats": {"rows_in": 4, "rows_out": 12, "dropped": {}}})
    return folder


def test_generated_rows_keep_context_chunks_and_their_model_on_the_card(generated_folder, tmp_path):
    result = export(generated_folder, tmp_path / "ds", ExportOptions(
        context="include", splits={"train": 0.5, "validation": 0.25, "test": 0.25}))
    tables = split_tables(tmp_path / "ds")
    assert result.splits == {"train": 6, "validation": 3, "test": 3}
    generated = stage_rows(generated_folder)
    chunk_of = {r["id"]: json.loads(r["meta"])["chunk_id"] for r in generated}
    assert all(len({chunk_of[r["id"]] for r in t}) == len(t) // 3 for t in tables.values())
    first = next(r for r in tables["train"])
    assert first["messages"][0]["content"].startswith("Context:\n[1] ")
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "`llamacpp / gemma-3-270m` (12 rows)" in card and "synth_qa.v1 (version 1, sha256 0123456789ab)" in card
    lopsided = export(generated_folder, tmp_path / "ds2", ExportOptions(splits={"train": 0.97, "test": 0.03}))
    assert lopsided.splits == {"train": 12} and "split 'test' is empty" in lopsided.warnings[0]
    assert "split 'test' is empty" in (tmp_path / "ds2" / "README.md").read_text()


def strings(value) -> list[str]:
    """Every string inside a record (nested lists and dicts included)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("fmt", ["messages", "medrescue", "alpaca"])
def test_context_is_omitted_by_default_and_included_on_request(generated_folder, tmp_path, fmt):
    """Closed-book (default): every user turn is the question as synthesis wrote it, no passage anywhere in the
    record; RAG-style: the retrieved passages are in the prompt. The card and report.json say which."""
    by_id = {r["id"]: r for r in stage_rows(generated_folder)}
    records = {}
    for context in ("omit", "include"):
        out = tmp_path / context
        options = ExportOptions(format=fmt, splits={"train": 1.0}, **({} if context == "omit" else
                                                                          {"context": context}))
        export(generated_folder, out, options)
        records[context] = split_tables(out)["train"]
        card = (out / "README.md").read_text()
        assert f"context `{context}`" in card
        assert ("closed-book" if context == "omit" else "rag") in front_matter(card)["tags"]
        assert json.loads((out / "report.json").read_text())["context"] == context
    for record in records["omit"]:
        row = by_id[record["id"]]
        question, passages = row["messages"][0]["content"], row["context"]
        assert FORMATS[fmt].back(record)["messages"][0]["content"] == question
        assert not any(passages in text for text in strings(record))
    for record in records["include"]:
        row = by_id[record["id"]]
        assert FORMATS[fmt].back(record)["messages"][0]["content"] == \
            f"Context:\n{row['context']}\n\nQuestion: {row['messages'][0]['content']}"
    with pytest.raises(ExportError, match="unknown context mode 'rag'; modes are omit, include"):
        export(generated_folder, tmp_path / "bad", ExportOptions(context="rag"))


def test_context_mode_is_part_of_the_export_steps_fingerprint(generated_folder, tmp_path):
    def export_step(spec):
        ctx = Context(tmp_path, SerialExecutor(), Progress(enabled=False), rows=generated_folder,
                      fp="rows-fp")
        stats, record = run_step(ExportStep(spec), ctx)
        return stats, record["fingerprint"]

    closed, fp_closed = export_step(ExportSpec(splits={"train": 1.0}))
    again, fp_again = export_step(ExportSpec(splits={"train": 1.0}))
    assert not closed.cached and again.cached and fp_again == fp_closed
    rag, fp_rag = export_step(ExportSpec(splits={"train": 1.0}, context="include"))
    assert not rag.cached and fp_rag != fp_closed
    first = split_tables(tmp_path / "export")["train"][0]
    assert first["messages"][0]["content"].startswith("Context:\n[1] ")


def test_large_splits_are_sharded_and_still_load(qa_and_vqa_folder, tmp_path):
    out = tmp_path / "ds"
    export(qa_and_vqa_folder, out, ExportOptions(splits={"train": 1.0}, max_shard_mb=0.2))
    shards = sorted(p.name for p in (out / "data").glob("*.parquet"))
    assert len(shards) > 1 and shards == [f"train-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert Counter(ds["id"]) == Counter(r["id"] for r in stage_rows(qa_and_vqa_folder))
