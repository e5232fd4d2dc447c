"""Versioned prompt files: ``curate/prompts/NAME.vN.yaml`` (or any path), rendered for base or instruct models.

A prompt file holds, per task, a ``fewshot`` template (plain completion, for base models) and an ``instruct``
template (one user turn, for instruction-tuned models), with ``$name`` placeholders. Generated rows record the
file's name, version and sha256 so every row can be traced to the exact prompt that made it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import yaml

from curate.llm.base import Prompt


@dataclass(frozen=True)
class PromptFile:
    name: str
    version: int
    sha256: str
    tasks: dict[str, dict[str, str]]
    examples: tuple[str, ...] = ()  # texts of the few-shot examples: output that repeats one is a copy

    def fill(self, task: str, instruction_tuned: bool, **values) -> Prompt:
        """The prompt for ``task``: a string for base models, a one-turn message list for instruct models."""
        style = "instruct" if instruction_tuned else "fewshot"
        text = Template(self.tasks[task][style]).substitute({k: str(v) for k, v in values.items()})
        return [{"role": "user", "content": text.strip()}] if instruction_tuned else text.rstrip() + " "

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


def load_prompt(name_or_path: str) -> PromptFile:
    """A packaged prompt by name (``synth_qa.v2``) or a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        raw, name = path.read_bytes(), path.stem
    else:
        resource = resources.files("curate") / "prompts" / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise FileNotFoundError(f"no prompt '{name_or_path}': not a file, nor in curate/prompts/")
        raw, name = resource.read_bytes(), name_or_path
    data = yaml.safe_load(raw)
    tasks = {k: v for k, v in data.items() if isinstance(v, dict)}
    return PromptFile(name, int(data.get("version", 1)), hashlib.sha256(raw).hexdigest(), tasks,
                      tuple(data.get("examples") or ()))
