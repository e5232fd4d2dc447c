"""Executors on a real pipeline (FirstAidQA + MedQA rows, FM 4-25.11 and WHO PFA pages: chunk, decontaminate,
heuristics, pii, grounding, dedup): serial, processes and a local Ray cluster keep the same rows, rejects and counts;
one setup() per worker; a worker killed mid-step loses and duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from curate.executors import ExecutorSpec
from curate.io import read_jsonl
from curate.orchestrate import run_plan
from curate.pipeline import PipelineError, load_plan
from curate.steps import StepFailed, inside

STAGES = ["02-chunk", "03-decontaminate", "04-heuristics", "05-pii", "06-grounding", "07-dedup"]


def pipeline(tmp_path: Path, realdata: Path, batch_size: int = 96, sample: bool = True) -> Path:
    """The executors pipeline (also ``benchmarks/executors.py``'s, with ``sample=False``), written into ``tmp_path``.

    ``sample``: a few hundred rows of each source, FirstAidQA read a second time, and 25 of the MedQA questions the
    pipeline ingests held out; without it every row of each source, read once, and every other MedQA question held
    out."""
    medqa = realdata / "qa/medqa/medqa_usmle_4opt_test.jsonl"
    firstaid = str(realdata / "qa/firstaidqa/firstaidqa_v1.json")
    held_out = tmp_path / "held_out.jsonl"
    questions = medqa.read_text().splitlines()
    held_out.write_text("".join(json.dumps({"question": json.loads(line)["question"]}) + "\n"
                                for line in (questions[:50:2] if sample else questions[::2])))
    sources = [
        {"source": "hf_qa", "name": "firstaidqa", "path": firstaid, "license": "unknown", "limit": 700},
        {"source": "medqa-usmle-4-options", "path": str(medqa), "limit": 200},
        {"source": "hf_qa", "name": "firstaidqa-again", "license": "unknown", "limit": 60, "path": firstaid},
        {"source": "pdf", "name": "fm", "path": str(realdata / "pdf/us_army_FM4-25.11_first_aid.pdf"),
         "license": "public-domain", "limit": 40},
        {"source": "pdf", "name": "pfa", "license": "unknown", "limit": 30,
         "path": str(realdata / "pdf/who_psychological_first_aid_field_workers_2011.pdf")},
    ]
    if not sample:
        sources = [{k: v for k, v in s.items() if k != "limit"} for s in sources if s.get("name") != "firstaidqa-again"]
    spec = {"name": "executors", "batch_size": batch_size, "sources": sources, "stages": [
        {"stage": "chunk", "size": 160, "overlap": 32},
        {"stage": "decontaminate", "eval_sets": [{"name": "medqa-held-out", "path": str(held_out)}]},
        {"stage": "heuristics", "answer": {"min_words": 12}},
        {"stage": "pii"},
        {"stage": "grounding", "semantic": False, "negation": False},
        {"stage": "dedup", "threshold": 0.8, "kinds": ["qa", "chunk"]},
    ]}
    path = tmp_path / "executors.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def outputs(run: Path) -> dict:
    """Per stage folder: the kept rows in order, the rejects, and the counts (timings and setups aside)."""
    out = {}
    for name in STAGES:
        folder = run / name
        rows = [r for p in sorted(folder.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
        stats = json.loads((folder / "_stage.json").read_text())["stats"]
        counters = {k: v for k, v in stats["counters"].items() if k != "setups"}
        out[name] = {"rows": rows, "rejects": read_jsonl(folder / "rejects.jsonl"),
                     "counts": (stats["rows_in"], stats["rows_out"], stats["dropped"], counters)}
    return out


def setups(run: Path) -> dict[str, int]:
    return {name: json.loads((run / name / "_stage.json").read_text())["stats"]["counters"].get("setups", 0)
            for name in STAGES}


def batches(run: Path) -> dict[str, int]:
    return {name: len(list((run / name).glob("shard-*.json"))) for name in STAGES}


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory, realdata) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("serial")
    path = pipeline(tmp, realdata)
    run_plan(load_plan(path, tmp / "run"))
    return path, tmp / "run"


@pytest.fixture(scope="module")
def small_batches(tmp_path_factory, realdata) -> tuple[Path, Path]:
    """The pipeline in batches of 24 rows, run serially: a step lasts long enough to kill a worker in it."""
    tmp = tmp_path_factory.mktemp("small")
    path = pipeline(tmp, realdata, batch_size=24)
    run_plan(load_plan(path, tmp / "run"))
    return path, tmp / "run"


def test_serial_run_exercises_every_stage(serial_run):
    _, run = serial_run
    out = outputs(run)
    kinds = {r["kind"] for r in out["07-dedup"]["rows"]}
    assert kinds == {"qa", "chunk"}
    assert out["04-heuristics"]["counts"][2].get("answer_too_short", 0) > 0
    assert out["03-decontaminate"]["counts"][2].get("contaminated", 0) >= 25
    assert out["07-dedup"]["counts"][2].get("exact_duplicate", 0) >= 40
    assert batches(run)["04-heuristics"] > 4  # enough batches that a setup per batch would show
    assert set(setups(run).values()) <= {0, 1}


@pytest.mark.slow
def test_processes_match_serial_with_one_setup_per_worker(serial_run, tmp_path):
    path, serial = serial_run
    run_plan(load_plan(path, tmp_path / "run"), executor=ExecutorSpec(kind="processes", workers=2))
    assert outputs(tmp_path / "run") == outputs(serial)
    for name, n in setups(tmp_path / "run").items():
        assert n <= 2, (name, n)                 # one per worker, never one per batch
    assert setups(tmp_path / "run")["03-decontaminate"] == 2 and batches(serial)["03-decontaminate"] > 4


@pytest.mark.slow
def test_ray_matches_serial_with_one_setup_per_actor(serial_run, tmp_path):
    path, serial = serial_run
    run_plan(load_plan(path, tmp_path / "run"), executor=ExecutorSpec(kind="ray", workers=2, num_cpus=2))
    assert outputs(tmp_path / "run") == outputs(serial)
    for name, n in setups(tmp_path / "run").items():
        assert n <= 2, (name, n)
    assert setups(tmp_path / "run")["03-decontaminate"] >= 1


def _kill_first_worker(folder: Path, match, stop: threading.Event, killed: list) -> None:
    """Once ``folder`` holds a finished batch, SIGKILL one process that ``match`` picks."""
    while not stop.is_set() and not killed:
        if any(folder.glob("shard-*.json")):
            for proc in psutil.Process().children(recursive=True) + list(psutil.process_iter()):
                try:
                    if match(proc):
                        os.kill(proc.pid, signal.SIGKILL)
                        killed.append(proc.pid)
                        return
                except (psutil.Error, ProcessLookupError):
                    continue
        time.sleep(0.02)


def _run_with_kill(path: Path, run: Path, spec: ExecutorSpec, match) -> tuple[list, Exception | None]:
    stop, killed = threading.Event(), []
    watcher = threading.Thread(target=_kill_first_worker, args=(run / "03-decontaminate", match, stop, killed))
    watcher.start()
    error = None
    try:
        run_plan(load_plan(path, run), executor=spec)
    except StepFailed as exc:
        error = exc
    finally:
        stop.set()
        watcher.join()
    return killed, error


@pytest.mark.slow
def test_killed_process_worker_resumes_without_loss(small_batches, tmp_path):
    path, serial = small_batches
    spec = ExecutorSpec(kind="processes", workers=2)
    me = os.getpid()

    def pool_worker(proc) -> bool:
        return proc.ppid() == me and "spawn_main" in " ".join(proc.cmdline())

    killed, error = _run_with_kill(path, tmp_path / "run", spec, pool_worker)
    assert killed and error is not None and not (tmp_path / "run" / "03-decontaminate" / "_stage.json").exists()
    assert "rerun the same command to resume" in str(error)
    run_plan(load_plan(path, tmp_path / "run"), executor=spec)
    assert outputs(tmp_path / "run") == outputs(serial)


@pytest.mark.slow
def test_killed_ray_actor_is_retried_without_loss(small_batches, tmp_path):
    path, serial = small_batches

    def actor(proc) -> bool:
        return "_Actor" in " ".join(proc.cmdline())

    killed, error = _run_with_kill(path, tmp_path / "run", ExecutorSpec(kind="ray", workers=2, num_cpus=2), actor)
    assert killed and error is None  # Ray restarted the actor and retried its batch within the same run
    assert outputs(tmp_path / "run") == outputs(serial)


def test_parsing_a_pipeline_imports_no_model_code(tmp_path, realdata):
    path = pipeline(tmp_path, realdata)
    spec = yaml.safe_load(path.read_text())  # with every delivery step: export, push, finetune, compare, evaluate
    repo = Path(__file__).resolve().parents[1]
    spec.update(export={"push": {"repo": "me/data"}}, finetune={
        "recipe": str(repo / "finetune" / "gemma3-270m-cpu-lora.yaml"), "compare": {"questions": ["Burns?"]},
        "evaluate": {"set": str(realdata / "qa/firstaidqa/eval_questions_40.json")}})
    path.write_text(yaml.safe_dump(spec))
    heavy = ("torch", "transformers", "llama_cpp", "chromadb", "ray", "sentence_transformers", "peft", "trl",
             "curate.train.run", "curate.evaluate.harness", "curate.evaluate.models", "curate.llm.llamacpp",
             "curate.llm.hf", "curate.executors.raydata")
    code = ("import sys, curate.pipeline; from curate.pipeline import load_plan; "
            f"assert [s.name for s in load_plan({str(path)!r}).steps()][-5:] == "
            "['export', 'push', 'finetune', 'compare', 'evaluate']; "
            f"print([m for m in sys.modules if m.split('.')[0] in {heavy!r} or m in {heavy!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]", out.stdout


def test_stage_names_are_slugs_and_steps_stay_inside_the_run(tmp_path, realdata):
    path = pipeline(tmp_path, realdata)
    spec = yaml.safe_load(path.read_text())
    spec["stages"][0]["name"] = "x/../../../somewhere"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(PipelineError, match="must be a slug"):
        load_plan(path)
    with pytest.raises(ValueError, match="outside the run folder"):
        inside(tmp_path / "run", "../elsewhere")
    assert inside(tmp_path / "run", "02-chunk") == (tmp_path / "run" / "02-chunk").resolve()
