"""The prompts of an evaluation: few-shot examples from a versioned prompt file, rendered the same way for every model.

Consumes a prompt file (``curate/prompts/eval.v1.yaml`` by default, or any YAML path) holding, per task (``mcq``,
``decision``, ``open``, ``judge``), an ``instruction`` and hand-written ``examples``; produces prompts for the LLM
interface (``curate.llm.base.Prompt``) in one of two styles:

- ``chat``: the instruction as a system message, then one user / assistant pair per example, then the question as
  the last user turn. Every backend writes this in Gemma's turn markup (or the tokenizer's chat template), which
  suits instruction-tuned models and adapters trained on turns, and still shows a base model the pattern.
- ``completion``: plain text for base models: the instruction, then ``Question: ...\\nAnswer: ...`` blocks separated
  by blank lines, ending with ``Answer:`` (the judge's verdicts follow ``Verdict:`` on the next line, where the
  JSON grammar's opening brace fits).

Choice items are asked in one of two ways (``choices``), which log-likelihood scoring compares option by option:

- ``letters``: the question with its options as "A. text" lines (as the ``hf_qa`` connector writes them; PubMedQA as
  "Context:\\n...\\n\\nQuestion: ..."), the task's ``instruction``, and each option's continuation its letter (" B"),
  or Yes / No / Maybe for decisions. Generated answers are always asked this way. Suits instruction-tuned models.
- ``text``: lm-evaluation-harness's formulation for base models: the question alone (no option list), then
  ``Answer:``, and each option's continuation its own text (" Vitamin C"; decisions " yes" / " no" / " maybe"). The
  instruction is the task's optional ``text_instruction`` (none when the file has none, as in the harness's tasks:
  ``eval.v1`` has none); the examples are the same, answered with the option's text.

A question block that already has its own "Question:" line (a passage, then its question: BoolQ) or starts with
"Context:" is used as it is; any other gets "Question: " in front. An item's own system text is not used: every item
of a task gets the prompt file's instruction, which keeps prompts identical across models and sets.
``option_continuations`` gives, per option label, the text a model would write next; ``answer_continuation`` the same
for a reference answer (whose likelihood scores open items).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from curate.llm.base import Prompt

STYLES = ("chat", "completion")
CHOICES = ("text", "letters")
TASKS = ("mcq", "decision", "open", "judge")
_EXAMPLE_KEYS = {
    "mcq": {"question", "options", "answer"},
    "decision": {"context", "question", "answer"},
    "open": {"question", "answer"},
    "judge": {"question", "reference", "answer", "verdict", "rationale"},
}
CUES = {"answer": "Answer: ", "judge": "Verdict:\n"}  # completion style: what precedes each answer


class PromptFileError(ValueError):
    """The prompt file is missing or malformed; the message names the file and the key."""


@dataclass(frozen=True)
class EvalPrompts:
    """A loaded prompt file: its identity (name, version, sha256 of the bytes) and its tasks."""

    name: str
    version: int
    sha256: str
    tasks: dict[str, dict]

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


def _read(name_or_path: str) -> tuple[bytes, str]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path.read_bytes(), path.stem
    resource = resources.files("curate") / "prompts" / f"{name_or_path}.yaml"
    if not resource.is_file():
        raise PromptFileError(f"no prompt file '{name_or_path}': not a YAML path, nor in curate/prompts/")
    return resource.read_bytes(), name_or_path


def load_eval_prompts(name_or_path: str = "eval.v1") -> EvalPrompts:
    """The prompt file by packaged name (``eval.v1``) or path, checked task by task."""
    raw, name = _read(name_or_path)
    data = yaml.safe_load(raw) or {}
    for task in TASKS:
        spec = data.get(task)
        if not isinstance(spec, dict) or not isinstance(spec.get("instruction"), str):
            raise PromptFileError(f"prompt file '{name}' needs '{task}: {{instruction: ..., examples: [...]}}'")
        if not isinstance(spec.get("text_instruction", ""), str):
            raise PromptFileError(f"prompt file '{name}': {task}.text_instruction must be a string")
        for i, example in enumerate(spec.get("examples") or []):
            missing = ", ".join(sorted(_EXAMPLE_KEYS[task] - set(example)))
            if missing:
                raise PromptFileError(f"prompt file '{name}': {task} example {i + 1} lacks {missing}")
    return EvalPrompts(name, int(data.get("version", 1)), hashlib.sha256(raw).hexdigest(),
                       {task: data[task] for task in TASKS})


def format_mcq(question: str, options: dict[str, str]) -> str:
    """A question with its options, as the hf_qa connector writes it."""
    return question.strip() + "\n\n" + "\n".join(f"{label}. {text}" for label, text in options.items())


def format_decision(context: str, question: str) -> str:
    return f"Context:\n{context.strip()}\n\nQuestion: {question.strip()}"


def format_judged(question: str, reference: str, answer: str) -> str:
    return f"Question: {question.strip()}\nReference answer: {reference.strip()}\nCandidate answer: {answer.strip()}"


def decision_answer(label: str) -> str:
    return label.capitalize()


def _shot(task: str, example: dict, choices: str) -> tuple[str, str]:
    """One example as (user text, assistant text), its choice asked as ``choices`` says."""
    if task == "mcq":
        options = {str(k): str(v) for k, v in example["options"].items()}
        if choices == "text":
            return example["question"].strip(), options[example["answer"]]
        return format_mcq(example["question"], options), f"{example['answer']}. {options[example['answer']]}"
    if task == "decision":
        query = format_decision(example["context"], example["question"])
        return query, example["answer"] if choices == "text" else decision_answer(example["answer"]) + "."
    if task == "judge":
        verdict = json.dumps({"rationale": example["rationale"], "verdict": example["verdict"]})
        return format_judged(example["question"], example["reference"], example["answer"]), verdict
    return example["question"].strip(), example["answer"].strip()


def _block(text: str) -> str:
    own = text.startswith(("Context:", "Question:")) or "\nQuestion: " in text
    return text if own else f"Question: {text}"


def few_shot_prompt(style: str, instruction: str, shots: list[tuple[str, str]], query: str, cue: str) -> Prompt:
    """The few-shot prompt in ``style`` (see the module docstring); an empty instruction is left out."""
    head = [instruction.strip()] if instruction.strip() else []
    if style == "completion":
        blocks = head + [f"{_block(u)}\n{cue}{a}" for u, a in shots]
        blocks.append(f"{_block(query)}\n{cue.rstrip(' ')}")  # no trailing space: the answer's token carries it
        return "\n\n".join(blocks)
    if style != "chat":
        raise ValueError(f"prompt style {style!r} is not one of {', '.join(STYLES)}")
    messages = [{"role": "system", "content": text} for text in head]
    for user, assistant in shots:
        messages += [{"role": "user", "content": _block(user)}, {"role": "assistant", "content": assistant}]
    return messages + [{"role": "user", "content": _block(query)}]


def task_prompt(prompts: EvalPrompts, task: str, query: str, style: str, shots: int,
                choices: str = "letters") -> Prompt:
    """``query`` with the first ``shots`` examples of ``task``; a choice task asked as ``choices`` says (the query
    is then the question with its option lines for ``letters``, without them for ``text``)."""
    if choices not in CHOICES:
        raise ValueError(f"choices {choices!r} is not one of {', '.join(CHOICES)}")
    spec = prompts.tasks[task]
    examples = [_shot(task, e, choices) for e in (spec.get("examples") or [])[:shots]]
    text = choices == "text" and task in ("mcq", "decision")
    instruction = spec.get("text_instruction", "") if text else spec["instruction"]
    return few_shot_prompt(style, instruction, examples, query, CUES["judge" if task == "judge" else "answer"])


def judge_prompt(prompts: EvalPrompts, style: str, question: str, reference: str, answer: str) -> Prompt:
    """The judge's prompt for one answer, with every judge example."""
    return task_prompt(prompts, "judge", format_judged(question, reference, answer), style,
                       len(prompts.tasks["judge"].get("examples") or []))


def option_continuations(task: str, options: dict[str, str], style: str, choices: str = "letters") -> dict[str, str]:
    """{label: the text right after the prompt that chooses it}, for ``options`` {label: option text} (a decision's
    labels are its words): " B" (``letters``) or " Vitamin C" (``text``) after "Answer:", without the space when it
    opens a model turn (``chat``)."""
    space = " " if style == "completion" else ""
    if choices == "text":
        return {label: space + (label if task == "decision" else text.strip()) for label, text in options.items()}
    return {label: space + (decision_answer(label) if task == "decision" else label) for label in options}


def answer_continuation(answer: str, style: str) -> str:
    """A reference answer as the continuation of its open prompt (after "Answer:", or opening a model turn)."""
    return (" " if style == "completion" else "") + answer.strip()


def prompt_sha256(prompt: Prompt) -> str:
    """A digest of the exact prompt, so two runs can be checked item by item for identical prompts (an image part
    counts by its bytes' sha256)."""
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False, sort_keys=True,
                                                             default=lambda b: hashlib.sha256(b).hexdigest())
    return hashlib.sha256(text.encode()).hexdigest()
