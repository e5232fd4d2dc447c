"""``EvalSettings``: how an evaluation asks and scores items. Pydantic only, so a pipeline can be validated without
loading evaluation code."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from curate.evaluate.stats import LEVEL, RESAMPLES


class EvalSettings(BaseModel):
    """How items are asked and scored; identical settings are what make two runs comparable."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field("eval.v1", description="prompt file: packaged name or YAML path")
    style: Literal["chat", "completion"] | None = Field(None, description="chat turns or plain completion "
                                                                         "(None: by the model, see for_model)")
    shots: int | None = Field(None, ge=0, description="few-shot examples per prompt (at most those in the prompt "
                                                      "file; None: by the model)")
    scoring: Literal["generate", "loglik"] | None = Field(None, description="choice items: parse greedy output, or "
                                                                            "pick the most probable option (None: "
                                                                            "by the model)")
    choices: Literal["text", "letters"] | None = Field(None, description="loglik scoring: each option's text after "
                                                                         "the bare question (as "
                                                                         "lm-evaluation-harness), or the letters "
                                                                         "of listed options (None: by the model)")
    max_tokens_choice: int = Field(32, ge=1, description="tokens generated for a choice item")
    max_tokens_open: int = Field(256, ge=1, description="tokens generated for an open answer")
    judge_retries: int = Field(2, ge=0, description="judge retries after malformed output")
    judge_max_tokens: int = Field(160, ge=16, description="tokens the judge may write")
    resamples: int = Field(RESAMPLES, ge=100, description="bootstrap resamples")
    level: float = Field(LEVEL, gt=0, lt=1, description="confidence level of the intervals")
    seed: int = Field(0, description="bootstrap seed")
    batch_size: int = Field(8, ge=1, description="items per generate call and per progress step")

    def for_model(self, instruction_tuned: bool) -> "EvalSettings":
        """These settings with what was left unset chosen by the model: a base model is asked as
        lm-evaluation-harness asks it (completion, 0 shots, each option's text scored as the continuation of
        ``Question: ...\nAnswer:``); an instruction-tuned one in chat turns, 3 shots, its generated answer parsed
        (letters if loglik is asked for). Values set explicitly are kept."""
        chosen = TUNED if instruction_tuned else BASE
        return self.model_copy(update={k: v for k, v in chosen.items() if getattr(self, k) is None})


BASE = {"style": "completion", "shots": 0, "scoring": "loglik", "choices": "text"}
TUNED = {"style": "chat", "shots": 3, "scoring": "generate", "choices": "letters"}
