"""``curate view`` on a real run (the FM 4-25.11 manual chunked, indexed and turned into cited pairs; FirstAidQA; real
DICOM files; a row whose question is a script), driven in a real headless Chromium against the running server:
the funnel renders, a reason filter shows only that reason, paging follows, an image row shows its image, the
script shows as text and runs nothing; plus a killed run, a folder that is not a run and the static report."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path
from urllib.request import urlopen

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from test_finetune import TINY_TRAIN, _recipe, tiny_gemma3n, tokenizer  # noqa: F401 (fixtures of the tiny model)

from curate.cli import main
from curate.io import read_json, read_jsonl, write_json
from curate.orchestrate import run_plan
from curate.pipeline import load_plan

SCRIPT = "<script>document.body.setAttribute('data-xss', 'ran')</script>"
HOSTILE = {"question": f"What does this page do with {SCRIPT} inside a question about bleeding?",
           "answer": "Nothing: it is text. Apply firm, direct pressure on the wound with a clean dressing, raise the "
                     "limb if no bone is broken, and call for help if the bleeding does not stop within ten minutes "
                     "of steady pressure."}


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium not found: these tests drive a real headless browser; install it with "
                    "`apt-get install chromium` (Debian; `make test` does this when run as root)")
    return path


def browse(url: str, tmp: Path, *flags: str) -> subprocess.CompletedProcess:
    """Chromium headless on ``url`` with its own profile; returns the finished process."""
    profile = tmp / "chromium-profile"
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={profile}", *flags, url]
    return subprocess.run(cmd, capture_output=True, timeout=90, check=True)


def dom(url: str, tmp: Path) -> str:
    """The page's DOM after load, as the browser serializes it."""
    return browse(url, tmp, "--dump-dom").stdout.decode()


def cards(page: str) -> list[str]:
    return re.findall(r"<article class=\"row[^\"]*\">.*?</article>", page, re.DOTALL)


def card_ids(page: str) -> list[str]:
    return [re.search(r"<header>.*?<code>([0-9a-f]+)</code>", c, re.DOTALL).group(1) for c in cards(page)]


@pytest.fixture(scope="module")
def run(tmp_path_factory, realdata) -> Path:
    tmp = tmp_path_factory.mktemp("view")
    hostile = tmp / "hostile.jsonl"
    hostile.write_text(json.dumps(HOSTILE) + "\n")
    spec = {"name": "view-test", "batch_size": 40, "sources": [
        {"source": "hf_qa", "name": "hostile", "path": str(hostile), "license": "cc0-1.0"},
        {"source": "pdf", "name": "fm4-25-11", "path": str(realdata / "pdf/us_army_FM4-25.11_first_aid.pdf"),
         "license": "public-domain", "limit": 14},
        {"source": "hf_qa", "name": "firstaidqa", "path": str(realdata / "qa/firstaidqa/firstaidqa_v1.json"),
         "license": "unknown", "limit": 150},
        {"source": "dicom", "name": "dicom-real", "path": str(realdata / "dicom"), "license": "public-test-files"}],
        "stages": [{"stage": "chunk", "size": 160, "overlap": 24}, {"stage": "index"},
                   {"stage": "synth_qa", "batch_size": 8, "answer_mode": "extractive", "units_per_chunk": 2,
                    "top_k": 2},
                   {"stage": "select", "kinds": ["qa"], "min_chars": 250}],
        "export": {"splits": {"train": 0.8, "test": 0.2}}}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_plan(load_plan(path, tmp / "run"))
    return tmp / "run"


@pytest.fixture(scope="module")
def server(run):
    """``curate view RUN --port 0`` in a subprocess; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "view", str(run), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not found:
        proc.kill()
        pytest.fail(f"curate view did not start: {line} {proc.stderr.read()}")
    yield found.group(0)
    proc.terminate()
    proc.wait(timeout=10)


def test_funnel_renders_with_every_step_and_reason(server, run, tmp_path):
    shot = tmp_path / "funnel.png"
    browse(server + "/", tmp_path, f"--screenshot={shot}", "--window-size=1200,900")
    image = Image.open(shot).convert("RGB")
    counts = image.getcolors(maxcolors=1 << 20)
    solid = [c for n, c in counts if n >= 200]  # colours covering a bar, not anti-aliased edges
    assert len(solid) >= 5, solid  # background, frame, text, kept green and the drop reasons' colours
    assert (0x2e, 0x7d, 0x32) in solid  # the kept bars
    page = dom(server + "/", tmp_path)
    report = read_json(run / "report.json")
    for stage in report["stages"]:
        assert f"{stage['rows_in']:,} in → {stage['rows_out']:,} out" in unescape(page)
    select = next(s for s in report["stages"] if s["stage"] == "select")
    assert set(select["dropped"]) == {"kind", "too_short"}
    assert all(f">{reason}<" in page for reason in select["dropped"])


def test_reason_filter_shows_only_that_reason(server, run, tmp_path):
    rejects = read_jsonl(run / "05-select" / "rejects.jsonl")
    for reason in ("kind", "too_short"):
        page = dom(f"{server}/step/05-select?show=rejects&reason={reason}", tmp_path)
        reasons = re.findall(r'<span class="badge reason">([^<]+)</span>', page)
        expected = [r["id"] for r in rejects if r["reason"] == reason][:20]
        assert reasons == [reason] * len(expected) and card_ids(page) == expected
    kind = dom(f"{server}/step/05-select?show=rejects&reason=kind", tmp_path)
    # 4 of the 5 real DICOMs are images here: the fifth has a date burned into its pixels and stops at ingest
    assert len(cards(kind)) == sum(r["row"]["kind"] == "image" for r in rejects) == 4


def test_paging_follows_next_links_in_file_order(server, run, tmp_path):
    files = sorted((run / "04-synth_qa").glob("part-*.parquet"))
    ids = pq.read_table(files, columns=["id"])["id"].to_pylist()
    assert len(ids) > 40
    first = dom(f"{server}/step/04-synth_qa", tmp_path)
    assert card_ids(first) == ids[:20] and f"rows 1–20 of {len(ids):,}" in first
    href = unescape(re.search(r'<a href="([^"]+)" class="next">', first).group(1))
    second = dom(server + href, tmp_path)
    assert card_ids(second) == ids[20:40] and f"rows 21–40 of {len(ids):,}" in second
    assert re.search(r'class="prev"', second)


def test_synthesized_pair_shows_cited_passage_with_support_highlighted(server, run, tmp_path):
    page = dom(f"{server}/step/04-synth_qa", tmp_path)
    pairs = pq.read_table(sorted((run / "04-synth_qa").glob("part-*.parquet"))).to_pylist()[:20]
    at = next(i for i, r in enumerate(pairs) if r["context"])  # rows that passed through come first
    first = cards(page)[at]
    answer = pairs[at]["messages"][1]["content"]
    marked = unescape(re.search(r'<mark class="support">(.*?)</mark>', first, re.DOTALL).group(1))
    assert " ".join(marked.split()) in " ".join(answer.split()) or " ".join(answer.split()) in marked
    assert 'class="badge cited"' in first
    citation = pairs[at]["citations"][0]
    assert f"{citation['doc_id']} p. " in unescape(first)
    source = unescape(re.search(r'<a href="(/source\?[^"]+)"', first).group(1))
    text = dom(server + source, tmp_path)
    assert f"page={citation['page']}" in text  # the ingested page row, by its locator
    assert "<img" in text and "pdfpage" in text


def test_image_row_shows_its_image(server, run, tmp_path):
    rows = pq.read_table(sorted((run / "01-ingest").glob("part-*.parquet")), columns=["kind", "id"]).to_pylist()
    at = next(i for i, r in enumerate(rows) if r["kind"] == "image")
    page = dom(f"{server}/step/01-ingest?offset={at}", tmp_path)
    src = unescape(re.search(r'<img src="([^"]+)"[^>]*class="picture"', page).group(1))
    with urlopen(server + src) as response:
        assert response.headers["Content-Type"] == "image/png"
        data = response.read()
    picture = Image.open(io.BytesIO(data))
    picture.load()
    assert picture.width > 32 and picture.height > 32 and len(picture.convert("L").getcolors(256)) > 16
    part, row = map(int, src.rsplit("/", 2)[1:])
    stored = pq.read_table(sorted((run / "01-ingest").glob("part-*.parquet"))[part], columns=["image"])
    assert stored["image"][row].as_py()["bytes"] == data  # the de-identified PNG the row holds, byte for byte
    assert "modality" in page and "deidentification" in page and "PatientName" not in page


def test_script_in_a_row_is_text_and_runs_nothing(server, tmp_path):
    page = dom(f"{server}/step/05-select?q=data-xss", tmp_path)
    body = re.search(r"<body[^>]*>", page).group(0)
    assert "data-xss" not in body  # the script never ran
    assert "<script" not in page  # no script element reached the DOM
    assert "&lt;script&gt;document.body.setAttribute('data-xss', 'ran')&lt;/script&gt;" in page
    with urlopen(f"{server}/step/05-select?q=data-xss") as response:
        assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none' forbids all
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_static_report_is_self_contained_and_escaped(run, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["view", str(run), "--static", str(out)]) == 0
    html = out.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<link" not in html  # nothing from elsewhere
    assert "<svg" in html and "data:image/png;base64," in html and "dataset card" in html
    page = dom(out.as_uri(), tmp_path)  # no Content-Security-Policy here: escaping alone must hold
    assert "data-xss" not in re.search(r"<body[^>]*>", page).group(0) and "<script" not in page
    assert "&lt;script&gt;" in page


def test_killed_run_shows_done_steps_and_marks_the_partial_one(run, tmp_path):
    killed = tmp_path / "killed"
    shutil.copytree(run, killed)
    folder = killed / "04-synth_qa"
    marker = read_json(folder / "_stage.json")
    # What a kill after the second batch leaves: no marker, the progress file, later batches never written.
    (folder / "_stage.json").unlink()
    (folder / "rejects.jsonl").unlink()
    write_json(folder / "_progress.json", {"fingerprint": marker["fingerprint"]})
    for later in ("part", "shard"):
        for f in sorted(folder.glob(f"{later}-*"))[2:]:
            f.unlink()
    shutil.rmtree(killed / "05-select")
    (killed / "report.json").unlink()
    from curate.view.runfolder import RunFolder
    from curate.view.server import serve_in_thread

    server, url = serve_in_thread(RunFolder(killed))
    try:
        with urlopen(url + "/") as response:
            page = unescape(response.read().decode())
        kept = sum(read_json(f)["rows_out"] for f in folder.glob("shard-*.json"))
        assert "04-synth_qa (partial)" in page and "05-select (pending)" in page and "03-index</a>" in page
        assert "partial (2 batches finished)" in page and f"→ {kept:,} out" in page
        with urlopen(url + "/step/04-synth_qa") as response:
            assert f"of {kept:,}" in response.read().decode()
    finally:
        server.shutdown()


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    assert main(["view", str(tmp_path)]) == 2
    assert "is not a curate run folder" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def delivered(tmp_path_factory, realdata, request) -> Path:
    """A run that exports FirstAidQA, LoRA-trains a tiny random Gemma 3n on it for 3 steps and scores the base and
    the tuned model on 6 of the 40 FirstAidQA evaluation questions."""
    tmp = tmp_path_factory.mktemp("delivered")
    recipe = _recipe(tmp / "tiny.yaml", str(request.getfixturevalue("tiny_gemma3n")), train={**TINY_TRAIN, "max_steps": 3},
                     data={"max_train_rows": 16, "eval_split": None})
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump({
        "name": "view-delivery",
        "sources": [{"source": "hf_qa", "name": "firstaidqa", "license": "unknown", "limit": 40,
                     "path": str(realdata / "qa/firstaidqa/firstaidqa_v1.json")}],
        "stages": [{"stage": "select", "min_chars": 200}],
        "export": {"splits": {"train": 1.0}},
        "finetune": {"recipe": str(recipe), "evaluate": {
            "set": str(realdata / "qa/firstaidqa/eval_questions_40.json"), "limit": 6,
            "settings": {"shots": 0, "max_tokens_open": 8}, "model": {"dtype": "float32", "device": "cpu"}}}}))
    run_plan(load_plan(path, tmp / "run"))
    return tmp / "run"


def test_delivery_shows_loss_curve_and_base_vs_tuned_per_item(delivered, tmp_path):
    from curate.view.runfolder import RunFolder
    from curate.view.server import serve_in_thread

    server, url = serve_in_thread(RunFolder(delivered))
    try:
        page = dom(url + "/delivery", tmp_path)
    finally:
        server.shutdown()
    history = read_json(delivered / "finetune" / "loss_history.json")
    losses = [h for h in history["train"] if "loss" in h]
    curve = re.search(r'<svg[^>]*class="loss".*?</svg>', page, re.DOTALL).group(0)
    assert len(re.findall(r"<circle", curve)) == len(losses) == 3
    assert all(f"train step {h['step']}: {h['loss']:.4f}" in curve for h in losses)
    comparison = read_json(delivered / "evaluate" / "comparison.json")
    table = re.search(r'<table class="metrics">(?:(?!</table>).)*tuned − base.*?</table>', page, re.DOTALL).group(0)
    for name, m in comparison["metrics"].items():
        assert f"<td>{name}</td><td>{m['a']['value']:.3f} [{m['a']['ci_low']:.3f}, {m['a']['ci_high']:.3f}]" \
            in unescape(table)
    base = read_jsonl(delivered / "evaluate" / "base" / "predictions.jsonl")
    tuned = {r["id"]: r for r in read_jsonl(delivered / "evaluate" / "tuned" / "predictions.jsonl")}
    items = re.findall(r'<tr class="item">(.*?)</tr>', page, re.DOTALL)
    assert len(items) == len(base) == 6
    for row, b in zip(items, base):
        cells = [unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]
        assert b["question"] in cells[0] and b["reference"] in cells[0]
        assert b["output"] in cells[1] and tuned[b["id"]]["output"] in cells[2]
        assert f"{b['token_f1']}" in cells[1]
    assert "firstaidqa" in page and ">train<" in page  # the export's split table
