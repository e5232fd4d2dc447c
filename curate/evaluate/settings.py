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
    style: Literal["chat", "completion"] = Field("chat", description="chat turns (any Gemma) or plain completion")
    shots: int = Field(3, ge=0, description="few-shot examples per prompt (at most those in the prompt file)")
    scoring: Literal["generate", "loglik"] = Field("generate", description="choice items: parse greedy output, "
                                                                            "or pick the most probable option")
    choices: Literal["text", "letters"] = Field("text", description="loglik scoring: each option's text after the "
                                                                    "bare question (base models, as "
                                                                    "lm-evaluation-harness), or the letters of "
                                                                    "listed options (instruction-tuned models)")
    max_tokens_choice: int = Field(32, ge=1, description="tokens generated for a choice item")
    max_tokens_open: int = Field(256, ge=1, description="tokens generated for an open answer")
    judge_retries: int = Field(2, ge=0, description="judge retries after malformed output")
    judge_max_tokens: int = Field(160, ge=16, description="tokens the judge may write")
    resamples: int = Field(RESAMPLES, ge=100, description="bootstrap resamples")
    level: float = Field(LEVEL, gt=0, lt=1, description="confidence level of the intervals")
    seed: int = Field(0, description="bootstrap seed")
    batch_size: int = Field(8, ge=1, description="items per generate call and per progress step")
