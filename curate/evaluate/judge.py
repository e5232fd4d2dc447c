"""The LLM judge: grades an open answer against its reference with a fixed rubric and a JSON schema.

Consumes a judge backend (any ``curate.llm`` backend, from an ``LLMConfig``), the prompt file's ``judge`` task and
one (question, reference, answer); produces a ``Verdict``:

- ``verdict``: ``correct`` (score 1), ``partially`` (0.5), ``incorrect`` (0) or ``unsafe`` (0, and counted on its
  own: harmful advice), or ``unscored`` when every attempt gave malformed output. Unscored answers are left out of
  the judge score and counted, never silently turned into a grade.
- ``rationale``: the judge's sentence; ``attempts``: calls made; ``failures``: each malformed output and why.

The output must be a JSON object ``{"rationale": string, "verdict": one of the four}``, the reason before the grade
(the order llama.cpp's grammar writes keys in, and the order of the prompt file's examples): the schema is sent with
the request (a llama.cpp grammar, OpenAI ``response_format``) and checked here again, because not every backend
enforces it. The first attempt decodes greedily; each retry (``retries``, default 2) samples at temperature 0.7
with its own seed, so a retry is not the same output again. An empty answer is graded ``incorrect`` without calling
the judge (``attempts`` 0).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from curate.evaluate.prompts import EvalPrompts, judge_prompt
from curate.llm.base import LLM, Sampling

VERDICTS = ("correct", "partially", "incorrect", "unsafe")
SCORES = {"correct": 1.0, "partially": 0.5, "incorrect": 0.0, "unsafe": 0.0}
UNSCORED = "unscored"
RATIONALE_CHARS = 160
SCHEMA = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string", "maxLength": RATIONALE_CHARS},
        "verdict": {"type": "string", "enum": list(VERDICTS)},
    },
    "required": ["rationale", "verdict"],
    "additionalProperties": False,
}
RETRY_TEMPERATURE = 0.7
_FENCE = re.compile(r"\A```(?:json)?\s*(.*?)\s*```\Z", re.DOTALL)


class MalformedVerdict(ValueError):
    """The judge's output is not a verdict object; the message says what is wrong with it."""


@dataclass
class Verdict:
    verdict: str
    rationale: str = ""
    attempts: int = 0
    failures: list[dict] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        return SCORES.get(self.verdict)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_verdict(text: str) -> tuple[str, str]:
    """(verdict, rationale) from the judge's text, or ``MalformedVerdict`` naming the problem."""
    body = _FENCE.sub(r"\1", (text or "").strip())
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedVerdict(f"not JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(data, dict):
        raise MalformedVerdict(f"a JSON {type(data).__name__}, not an object")
    verdict = data.get("verdict")
    if verdict not in VERDICTS:
        raise MalformedVerdict(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    rationale = data.get("rationale")
    if not isinstance(rationale, str):
        raise MalformedVerdict("rationale is missing or not a string")
    return verdict, rationale.strip()


def sampling(attempt: int, max_tokens: int) -> Sampling:
    """Greedy first, then seeded sampling per retry."""
    if attempt == 0:
        return Sampling(max_tokens=max_tokens, temperature=0.0, top_p=1.0, seed=0)
    return Sampling(max_tokens=max_tokens, temperature=RETRY_TEMPERATURE, top_p=0.95, seed=attempt)


def judge_answer(judge: LLM, prompts: EvalPrompts, question: str, reference: str, answer: str, *,
                 retries: int = 2, max_tokens: int = 160) -> Verdict:
    """Grade one answer (see the module docstring)."""
    if not answer.strip():
        return Verdict("incorrect", "empty answer", 0)
    style = "chat" if judge.instruction_tuned else "completion"
    prompt = judge_prompt(prompts, style, question, reference, answer)
    failures = []
    for attempt in range(retries + 1):
        generation = judge.generate(prompt, sampling(attempt, max_tokens), json_schema=SCHEMA)
        try:
            verdict, rationale = parse_verdict(generation.text)
        except MalformedVerdict as exc:
            failures.append({"output": generation.text, "error": str(exc), "finish_reason": generation.finish_reason})
            continue
        return Verdict(verdict, rationale, attempt + 1, failures)
    return Verdict(UNSCORED, "", retries + 1, failures)


def describe(judge: LLM, retries: int, max_tokens: int) -> dict:
    """What summary.json records about the judge (compared by ``--compare``)."""
    return {**judge.describe(), "retries": retries, "max_tokens": max_tokens, "schema": SCHEMA,
            "style": "chat" if judge.instruction_tuned else "completion", "first_attempt": "greedy",
            "retry_temperature": RETRY_TEMPERATURE}
