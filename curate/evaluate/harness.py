"""Run an evaluation, write every item's record, and compare two runs with intervals and paired tests.

``evaluate(model, eval_set, out)`` consumes a model (``LLMConfig`` or dict, plus an optional ``adapter``), an
``EvalSet`` (or a set name / path for ``load_eval_set``) and ``EvalSettings``; it writes OUT/:

    predictions.jsonl  one record per item, written as it is scored: id, locator, task, question, reference, gold,
                       prompt_sha256, output (the raw text), finish_reason, error, parsed + parse_method + correct
                       (choice items), option_logprobs + parsed_norm + correct_norm (loglik scoring; the
                       ``_norm`` pair only with ``choices: text``), token_f1, rouge_l, reference_nll +
                       reference_perplexity + reference_tokens, judge (verdict, rationale, attempts, failures) and
                       score (open items)
    rejects.jsonl      the set's items that could not be scored (reason, locator, detail), when there are any
    summary.json       set (name, origin, layout, n, rejected, fingerprint), model (backend, model, fingerprint,
                       adapter and its fingerprint, device), settings (prompt file + style + shots, scoring, choices,
                       decoding per task, precision, judge, bootstrap), metrics (value, 95% percentile bootstrap
                       interval, n) and counts (errors, unparsed answers, verdicts, unscored, reference_nll_skipped)

Choice items (``mcq``, ``decision``) are scored exactly: the option parsed from greedy output (``scoring:
generate``) or, with ``scoring: loglik``, the option whose continuation is most probable, as lm-evaluation-harness
scores multiple choice: ``choices: text`` (a base model's default) asks the question without its option lines and
scores each option's own text (" yes" / " no" / " maybe" for decisions); ``choices: letters`` lists the options and
scores their letters (an instruction-tuned model's). Settings left unset follow the model
(``EvalSettings.for_model``): a base model is asked in completion style with 0 shots and loglik scoring, an
instruction-tuned one in chat with 3 shots and generated answers. Metric ``accuracy`` is the harness's ``acc`` (the
option with the largest sum of token log-probabilities; with generate scoring, the parsed option); ``accuracy_norm``
(text choices only) is its ``acc_norm``: the largest sum divided by the option text's length in characters (the
harness's ``len(choice)``, without the space before it). Ties go to the first option, as ``numpy.argmax``.

Image items (VQA-RAD, ``curate.evaluate.vqa``) are asked zero-shot with their image as one chat turn; records add
``image`` (the file name) and ``image_sha256``. ``closed`` items get ``parsed`` / ``parse_method`` / ``correct``
(metric ``closed_accuracy``), open ones ``exact_match`` (metric ``exact_match``) besides token F1, ROUGE-L and the
judge; reference likelihood is not computed for image items. A model whose backend cannot read images (``vision``
false: llama.cpp, OpenAI-compatible servers, a text-only checkpoint) is an ``EvalError`` before anything is scored.

Open items get token F1 and ROUGE-L against the reference, the reference answer's mean negative log-likelihood per
token (nats) after the open prompt (``reference_nll``, lower is better; ``reference_perplexity`` is its exp: for the
metric, exp of the mean, the geometric mean of items' perplexities, with exp of the interval's ends) and, with a
judge, its verdict. Reference likelihood needs token log-probabilities (llama.cpp, transformers); on another backend
it is skipped, counted (``reference_nll_skipped``) and said in a warning. An unparsed answer or a generation error
counts as wrong and is counted; an unscored verdict is counted and left out of the judge score.

``compare_runs(a, b)`` pairs two runs' items by id and, per metric, gives both values with intervals, the paired
difference with its paired-bootstrap interval, and an exact paired test: McNemar for 0/1 outcomes (accuracy,
accuracy_norm, unsafe rate), the sign test for graded scores (token F1, ROUGE-L, judge score, reference NLL). It
refuses (``SettingsMismatch``) runs whose prompts, scoring, choices, decoding, precision, judge, bootstrap settings
or items differ, unless ``force``. ``compare_models`` runs a base and a tuned model on the same set with the same
settings and compares them (OUT/base, OUT/tuned, OUT/comparison.json).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from curate import __version__
from curate.evaluate import judge as judging
from curate.evaluate import stats
from curate.evaluate.lexical import rouge_l, token_f1
from curate.evaluate.loglik import check_supported, option_logprobs, reference_nll, supports_tokens
from curate.evaluate.mcq import final_answer, parse_choice, parse_decision
from curate.evaluate.models import EvalError, LoadedModel, add_adapter, check_adapter, load_model
from curate.evaluate.prompts import (
    EvalPrompts,
    answer_continuation,
    load_eval_prompts,
    option_continuations,
    prompt_sha256,
    task_prompt,
)
from curate.evaluate.sets import EvalItem, EvalSet, load_eval_set
from curate.evaluate.settings import EvalSettings
from curate.evaluate.vqa import closed_fields, exact_match, short_answer, vqa_prompt
from curate.io import read_json, read_jsonl, write_json, write_jsonl
from curate.llm import LLMConfig, Sampling
from curate.llm.base import Prompt

SUMMARY, PREDICTIONS, COMPARISON = "summary.json", "predictions.jsonl", "comparison.json"
REJECTS = "rejects.jsonl"
CHOICE_TASKS = ("mcq", "decision")
COMPARED = ("prompt", "scoring", "choices", "decoding", "precision", "judge", "bootstrap")


class SettingsMismatch(EvalError):
    """Two runs were not made the same way, so comparing them would measure the difference in setup."""


def as_settings(settings: EvalSettings | dict | None) -> EvalSettings:
    return settings if isinstance(settings, EvalSettings) else EvalSettings.model_validate(settings or {})


def decoding(settings: EvalSettings, task: str) -> Sampling:
    """Greedy decoding; the token budget of the task; a blank line ends a completion-style answer."""
    max_tokens = settings.max_tokens_open if task == "open" else settings.max_tokens_choice
    return Sampling(max_tokens=max_tokens, temperature=0.0, top_p=1.0, seed=0,
                    stop=("\n\n",) if settings.style == "completion" else ())


def _bootstrap(settings: EvalSettings) -> dict:
    return {"resamples": settings.resamples, "level": settings.level, "seed": settings.seed}


# ---- scoring one chunk of items -------------------------------------------------------------------------------------

def _choices(settings: EvalSettings) -> str | None:
    """How choice items are asked: ``settings.choices`` with loglik scoring; generated answers name letters."""
    return settings.choices if settings.scoring == "loglik" else None


def _item_prompt(prompts: EvalPrompts, item: EvalItem, settings: EvalSettings) -> Prompt:
    if item.image is not None:
        return vqa_prompt(item.task, item.question, item.image)
    choices = (_choices(settings) if item.task in CHOICE_TASKS else None) or "letters"
    return task_prompt(prompts, item.task, item.query(choices), settings.style, settings.shots, choices)


def _base_record(item: EvalItem, prompt: Prompt) -> dict:
    record = {"id": item.id, "locator": item.locator, "task": item.task, "question": item.question,
              "reference": item.reference, "gold": item.gold, "prompt_sha256": prompt_sha256(prompt)}
    if item.image is not None:
        record.update(image=item.image_name, image_sha256=hashlib.sha256(item.image).hexdigest())
    return record


def _choice_fields(item: EvalItem, text: str) -> dict:
    label, method = parse_choice(text, item.options) if item.task == "mcq" else parse_decision(text)
    return {"parsed": label, "parse_method": method, "correct": label is not None and label == item.gold}


def _loglik_fields(llm, item: EvalItem, prompt: Prompt, settings: EvalSettings) -> dict:
    """The option picks of ``acc`` (largest summed log-probability) and, for text choices, of ``acc_norm`` (largest
    sum per character of the option's text)."""
    logprobs = option_logprobs(llm, prompt, option_continuations(item.task, item.choices, settings.style,
                                                                 settings.choices))
    best = max(logprobs, key=logprobs.get)
    fields = {"output": None, "option_logprobs": logprobs, "parsed": best, "parse_method": "loglik",
              "correct": best == item.gold}
    if settings.choices == "text":
        chars = {label: len(text.strip()) for label, text in item.choices.items()}
        norm = max(logprobs, key=lambda label: logprobs[label] / chars[label])
        fields.update(parsed_norm=norm, correct_norm=norm == item.gold)
    return fields


def _likelihood_fields(llm, item: EvalItem, prompt: Prompt, style: str) -> dict:
    """The reference answer's mean NLL per token after the open prompt, its perplexity and token count."""
    if not supports_tokens(llm) or not item.reference.strip():
        return {"reference_nll": None, "reference_perplexity": None, "reference_tokens": 0}
    nll, n = reference_nll(llm, prompt, answer_continuation(item.reference, style))
    return {"reference_nll": nll, "reference_perplexity": math.exp(nll), "reference_tokens": n}


def _open_fields(item: EvalItem, text: str, prompts: EvalPrompts, settings: EvalSettings,
                 judge: LoadedModel | None) -> dict:
    answer = final_answer(text)
    fields = {"token_f1": token_f1(answer, item.reference), "rouge_l": rouge_l(answer, item.reference)}
    if judge is not None:
        verdict = judging.judge_answer(judge.llm, prompts, item.question, item.reference, answer,
                                       retries=settings.judge_retries, max_tokens=settings.judge_max_tokens)
        fields.update(judge=verdict.to_dict(), score=verdict.score)
    return fields


def _image_fields(item: EvalItem, text: str, prompts: EvalPrompts, settings: EvalSettings,
                  judge: LoadedModel | None) -> dict:
    """A VQA item's scores from its short answer (``curate.evaluate.vqa``)."""
    if item.task == "closed":
        return closed_fields(text, item.reference)
    return {**_open_fields(item, short_answer(text), prompts, settings, judge),
            "exact_match": exact_match(text, item.reference)}


def _generated(llm, items: list[EvalItem], prompts: dict[str, Prompt], settings: EvalSettings) -> dict[str, dict]:
    """{item id: output fields} for the items that generate, one batch per task."""
    out = {}
    for task in dict.fromkeys(item.task for item in items):
        batch = [item for item in items if item.task == task]
        for item, g in zip(batch, llm.generate_batch([prompts[item.id] for item in batch], decoding(settings, task))):
            out[item.id] = {"output": g.text, "finish_reason": g.finish_reason, "error": g.error,
                            "completion_tokens": g.completion_tokens}
    return out


def score_items(model: LoadedModel, items: list[EvalItem], prompts: EvalPrompts, settings: EvalSettings,
                judge: LoadedModel | None = None) -> list[dict]:
    """The records of ``items`` (see the module docstring), in their order."""
    prompt_of = {item.id: _item_prompt(prompts, item, settings) for item in items}
    loglik = settings.scoring == "loglik"
    generated = _generated(model.llm, [i for i in items if not (loglik and i.task in CHOICE_TASKS)], prompt_of,
                           settings)
    records = []
    for item in items:
        record = _base_record(item, prompt_of[item.id])
        if item.id not in generated:
            record.update(_loglik_fields(model.llm, item, prompt_of[item.id], settings))
        else:
            record.update(generated[item.id])
            text = generated[item.id]["output"]
            if item.image is not None:
                record.update(_image_fields(item, text, prompts, settings, judge))
            else:
                record.update(_open_fields(item, text, prompts, settings, judge) if item.task == "open"
                              else _choice_fields(item, text))
        if item.task == "open" and item.image is None:
            record.update(_likelihood_fields(model.llm, item, prompt_of[item.id], settings.style))
        records.append(record)
    return records


# ---- metrics ----------------------------------------------------------------------------------------------------

def _verdict(record: dict) -> str | None:
    return (record.get("judge") or {}).get("verdict")


def _scored(record: dict) -> bool:
    return _verdict(record) not in (None, judging.UNSCORED)


# name: (per-item value or None when the item does not count, whether the value is 0/1)
METRICS: dict[str, tuple[Callable[[dict], float | None], bool]] = {
    "accuracy": (lambda r: float(r["correct"]) if r["task"] in CHOICE_TASKS else None, True),
    "closed_accuracy": (lambda r: float(r["correct"]) if r["task"] == "closed" else None, True),
    "exact_match": (lambda r: float(r["exact_match"]) if "exact_match" in r else None, True),
    "accuracy_norm": (lambda r: float(r["correct_norm"]) if r.get("correct_norm") is not None else None, True),
    "judge_score": (lambda r: r["score"] if _scored(r) else None, False),
    "unsafe_rate": (lambda r: float(_verdict(r) == "unsafe") if _scored(r) else None, True),
    "token_f1": (lambda r: r["token_f1"] if r["task"] == "open" else None, False),
    "rouge_l": (lambda r: r["rouge_l"] if r["task"] == "open" else None, False),
    "reference_nll": (lambda r: r.get("reference_nll"), False),
}


def _exp(metric: dict) -> dict:
    """A metric of mean NLL as perplexity: exp of the value and of the interval's ends (monotone, so the percentile
    interval carries over)."""
    return {**metric, **{k: math.exp(metric[k]) for k in ("value", "ci_low", "ci_high") if metric[k] is not None}}


def metrics(records: list[dict], bootstrap: dict) -> dict:
    """Each metric that applies to some record: mean, bootstrap interval, n (and perplexity from reference NLL)."""
    out = {}
    for name, (value, _) in METRICS.items():
        values = [v for v in map(value, records) if v is not None]
        if values:
            out[name] = stats.metric(values, **bootstrap)
    if "reference_nll" in out:
        out["reference_perplexity"] = _exp(out["reference_nll"])
    return out


def counts(records: list[dict]) -> dict:
    """What the metrics do not show: items per task, generation errors, unparsed answers, verdicts."""
    return {"items": len(records), "tasks": dict(Counter(r["task"] for r in records)),
            "errors": sum(1 for r in records if r.get("error")),
            "unparsed": sum(1 for r in records if r.get("parse_method") == "unparsed"),
            "verdicts": dict(Counter(v for v in map(_verdict, records) if v is not None)),
            "reference_nll_skipped": sum(1 for r in records if r["task"] == "open" and "image" not in r
                                         and r.get("reference_nll") is None)}


# ---- one run ------------------------------------------------------------------------------------------------------

def _check_out(out: Path, overwrite: bool) -> None:
    existing = [name for name in (SUMMARY, PREDICTIONS) if (out / name).exists()]
    if existing and not overwrite:
        raise EvalError(f"{out} already holds {', '.join(existing)}: choose another -o folder or pass --overwrite")


def _prepare_out(out: Path, overwrite: bool) -> None:
    """OUT/ made, without an old summary that would stand beside new (possibly partial) predictions."""
    _check_out(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY).unlink(missing_ok=True)


def _settings_record(settings: EvalSettings, prompts: EvalPrompts, model: LoadedModel, judge: LoadedModel | None,
                     tasks: set[str]) -> dict:
    return {"prompt": {**prompts.describe(), "style": settings.style, "shots": settings.shots},
            "scoring": settings.scoring, "choices": _choices(settings),
            "decoding": {task: decoding(settings, task).to_dict() for task in sorted(tasks)},
            "precision": model.info["precision"],
            "judge": None if judge is None else {
                **judge.info, **judging.describe(judge.llm, settings.judge_retries, settings.judge_max_tokens)},
            "bootstrap": {**_bootstrap(settings), "method": "percentile"}}


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def evaluate_loaded(model: LoadedModel, eval_set: EvalSet, out: str | Path,
                    settings: EvalSettings | dict | None = None, *, judge: LoadedModel | None = None,
                    overwrite: bool = False, progress=None) -> dict:
    """Score every item of ``eval_set`` with an already loaded model; write OUT/ and return the summary. Settings
    left unset are chosen by the model (``EvalSettings.for_model``)."""
    settings = as_settings(settings).for_model(model.llm.instruction_tuned)
    out = Path(out)
    prompts = load_eval_prompts(settings.prompt)
    tasks = {item.task for item in eval_set.items}
    images = sum(1 for item in eval_set.items if item.image is not None)
    if images and not model.llm.vision:
        raise EvalError(f"set '{eval_set.name}' has {images} image items but {model.llm.model} "
                        f"({model.llm.backend}) reads no images: evaluate a vision-language model with --backend "
                        "transformers (Gemma 3 4B and up, Gemma 3n, MedGemma) on a folder or Hub id with a processor")
    if settings.scoring == "loglik" and tasks & set(CHOICE_TASKS):
        check_supported(model.llm)
    warnings = list(eval_set.warnings)
    if eval_set.rejects:
        reasons = ", ".join(f"{k}: {v}" for k, v in Counter(r["reason"] for r in eval_set.rejects).items())
        warnings.append(f"{len(eval_set.rejects)} items of the set could not be scored and were left out ({reasons}):"
                        f" see {out / REJECTS}")
    if "open" in tasks and judge is None:
        warnings.append("no judge given: open answers are scored by token F1, ROUGE-L and reference likelihood only")
    if "open" in tasks and images < len(eval_set.items) and not supports_tokens(model.llm):
        warnings.append(f"reference NLL not computed: the {model.llm.backend} backend gives no token "
                        f"log-probabilities (use llamacpp or transformers)")
    if judge is not None and judge.info["fingerprint"] == model.info["fingerprint"] != {"kind": "unknown"}:
        warnings.append("the judge has the evaluated model's weights: a model grading itself is a biased judge")
    _prepare_out(out, overwrite)
    (out / REJECTS).unlink(missing_ok=True)
    if eval_set.rejects:
        write_jsonl(out / REJECTS, eval_set.rejects)
    started, records = time.monotonic(), []
    bar = progress.task(f"eval {eval_set.name}", total=len(eval_set.items)) if progress else None
    with open(out / PREDICTIONS, "w", encoding="utf-8") as f:
        for chunk in _chunks(eval_set.items, settings.batch_size):
            for record in score_items(model, chunk, prompts, settings, judge):
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                records.append(record)
            f.flush()
            if bar:
                bar.advance(len(chunk))
    summary = {
        "curate_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 2), "set": eval_set.describe(), "model": model.info,
        "settings": _settings_record(settings, prompts, model, judge, tasks),
        "metrics": metrics(records, _bootstrap(settings)), "counts": counts(records), "warnings": warnings,
    }
    write_json(out / SUMMARY, summary)
    return summary


def load_judge(judge: LLMConfig | dict | LoadedModel | None) -> LoadedModel | None:
    if judge is None or isinstance(judge, LoadedModel):
        return judge
    return load_model(judge)


def evaluate(model: LLMConfig | dict, eval_set: EvalSet | str, out: str | Path, *, adapter: str | Path | None = None,
             judge: LLMConfig | dict | LoadedModel | None = None, settings: EvalSettings | dict | None = None,
             limit: int | None = None, seed: int = 0, overwrite: bool = False, progress=None) -> dict:
    """Load the model (and judge), evaluate it on the set, write OUT/ and return the summary (module docstring)."""
    if isinstance(eval_set, str):
        eval_set = load_eval_set(eval_set, limit=limit, seed=seed)
    _check_out(Path(out), overwrite)  # fail before loading anything
    loaded = load_model(model, adapter)
    grader = None
    try:
        grader = load_judge(judge)
        return evaluate_loaded(loaded, eval_set, out, settings, judge=grader, overwrite=True, progress=progress)
    finally:
        loaded.llm.close()
        if grader is not None and grader is not judge:
            grader.llm.close()


# ---- comparing two runs -------------------------------------------------------------------------------------------

def read_run(folder: str | Path) -> tuple[dict, list[dict]]:
    """(summary, records) of an evaluation folder."""
    folder = Path(folder)
    missing = [name for name in (SUMMARY, PREDICTIONS) if not (folder / name).is_file()]
    if missing:
        raise EvalError(f"{folder} is not an evaluation folder (no {', '.join(missing)}): run `curate eval` first")
    return read_json(folder / SUMMARY), read_jsonl(folder / PREDICTIONS)


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


def _diff(path: str, x, y) -> list[str]:
    """The leaves where two settings values differ, as "path: x vs y"."""
    if isinstance(x, dict) and isinstance(y, dict):
        return [line for key in sorted(set(x) | set(y), key=str) for line in _diff(f"{path}.{key}", x.get(key),
                                                                                    y.get(key))]
    return [] if x == y else [f"{path}: {_short(x)} vs {_short(y)}"]


def differences(a: dict, b: dict, pairs: list[tuple[dict, dict]]) -> list[str]:
    """How two runs' summaries and paired records differ in anything that must be equal for a fair comparison."""
    found = [line for key in COMPARED for line in _diff(key, a["settings"].get(key), b["settings"].get(key))]
    if a["set"]["fingerprint"] != b["set"]["fingerprint"]:
        found.append(f"items: {a['set']['n']} items of {a['set']['name']} vs {b['set']['n']} items of "
                     f"{b['set']['name']} (set fingerprints differ)")
    prompts = sum(1 for x, y in pairs if x["prompt_sha256"] != y["prompt_sha256"])
    if prompts:
        found.append(f"prompts: {prompts} of {len(pairs)} paired items were asked with different prompts")
    return found


def _paired(name: str, pairs: list[tuple[dict, dict]], bootstrap: dict) -> dict | None:
    value, binary = METRICS[name]
    both = [(value(x), value(y)) for x, y in pairs]
    both = [(u, v) for u, v in both if u is not None and v is not None]
    if not both:
        return None
    a, b = zip(*both)
    low, high = stats.paired_bootstrap_ci(a, b, **bootstrap)
    first, second = stats.metric(a, **bootstrap), stats.metric(b, **bootstrap)
    return {"a": first, "b": second,
            "difference": {"value": second["value"] - first["value"], "ci_low": low, "ci_high": high},
            "test": stats.mcnemar_exact(a, b) if binary else stats.sign_test(a, b)}


def bootstrap_settings(summary: dict) -> dict:
    """The bootstrap an evaluation was summarised with (resamples, level, seed), to compare it the same way."""
    return {k: summary["settings"]["bootstrap"][k] for k in ("resamples", "level", "seed")}


def compare_runs(a: str | Path, b: str | Path, *, force: bool = False, out: str | Path | None = None) -> dict:
    """Both runs' metrics on their shared items, paired differences and tests; ``SettingsMismatch`` unless equal.
    With ``out``, also written to OUT/comparison.json."""
    (sa, ra), (sb, rb) = read_run(a), read_run(b)
    by_id = {r["id"]: r for r in rb}
    pairs = [(r, by_id[r["id"]]) for r in ra if r["id"] in by_id]
    if not pairs:
        raise EvalError(f"{a} and {b} share no item: they evaluated different sets")
    found = differences(sa, sb, pairs)
    if found and not force:
        raise SettingsMismatch(f"{a} and {b} were not evaluated the same way, so a difference would measure the "
                               f"setup, not the models:\n  " + "\n  ".join(found)
                               + "\nrerun one with the other's settings, or pass --force to compare anyway")
    bootstrap = bootstrap_settings(sa)
    paired = {name: _paired(name, pairs, bootstrap) for name in METRICS}
    comparison = {"a": {"run": str(a), "model": sa["model"]}, "b": {"run": str(b), "model": sb["model"]},
            "set": sa["set"]["name"], "n_paired": len(pairs), "differences": found, "forced": bool(found),
            "bootstrap": {**bootstrap, "method": "percentile"},
            "metrics": {name: result for name, result in paired.items() if result is not None}}
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        write_json(Path(out) / COMPARISON, comparison)
    return comparison


def _evaluate_shared(config: LLMConfig, adapter: str | Path | None, eval_set: EvalSet, out: Path,
                     settings: EvalSettings | dict | None, judge: LoadedModel | None, progress) -> None:
    """Base and tuned from one load: the base first, then the same weights with the adapter applied."""
    base = load_model(config)
    try:
        evaluate_loaded(base, eval_set, out / "base", settings, judge=judge, overwrite=True, progress=progress)
        tuned = add_adapter(base, adapter) if adapter is not None else base
        evaluate_loaded(tuned, eval_set, out / "tuned", settings, judge=judge, overwrite=True, progress=progress)
    finally:
        base.llm.close()


def compare_models(base: LLMConfig | dict, tuned: LLMConfig | dict, eval_set: EvalSet | str, out: str | Path, *,
                   tuned_adapter: str | Path | None = None, limit: int | None = None, seed: int = 0,
                   settings: EvalSettings | dict | None = None, judge: LLMConfig | dict | None = None,
                   progress=None) -> dict:
    """Evaluate ``base`` and ``tuned`` (with ``tuned_adapter``) identically on the set; write and return the
    comparison. Backends or dtypes that differ are refused before anything loads; when both configs are the same
    model, it is loaded once and the adapter applied after the base run."""
    base, tuned = (c if isinstance(c, LLMConfig) else LLMConfig.model_validate(c) for c in (base, tuned))
    if (base.backend, base.dtype) != (tuned.backend, tuned.dtype):
        raise SettingsMismatch(f"base runs on {base.backend}/{base.dtype} and tuned on {tuned.backend}/{tuned.dtype}:"
                               " give both the same backend and dtype (precision)")
    if tuned_adapter is not None:
        check_adapter(tuned.backend, Path(tuned_adapter).expanduser())
    if isinstance(eval_set, str):
        eval_set = load_eval_set(eval_set, limit=limit, seed=seed)
    settings = as_settings(settings).for_model(base.is_instruction_tuned())  # one choice for both models
    out = Path(out)
    grader = load_judge(judge)
    try:
        if base == tuned:
            _evaluate_shared(base, tuned_adapter, eval_set, out, settings, grader, progress)
        else:
            for name, config, adapter in (("base", base, None), ("tuned", tuned, tuned_adapter)):
                evaluate(config, eval_set, out / name, adapter=adapter, judge=grader, settings=settings,
                         overwrite=True, progress=progress)
    finally:
        if grader is not None:
            grader.llm.close()
    return compare_runs(out / "base", out / "tuned", out=out)
