"""JSON-schema constrained decoding for the transformers backend, with xgrammar.

``JsonConstraint(tokenizer, vocab_size).processor(schema)`` is a fresh logits processor for one ``generate`` call
(it holds one grammar matcher per sequence); a schema is compiled once per tokenizer. xgrammar was chosen by
measurement (``benchmarks/judge_constrained.py``): on the embedded Gemma 3 270M the judge's replies parsed 12 of 12
constrained against 0 of 12 unconstrained; lm-format-enforcer 0.11.3's transformers integration does not import with
transformers 5 (it imports the removed ``transformers.tokenization_utils``).
"""

from __future__ import annotations

import json


class JsonConstraint:
    """Compiled JSON-schema grammars for one tokenizer."""

    def __init__(self, tokenizer, vocab_size: int):
        import xgrammar

        self._xgrammar = xgrammar
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self._compiler = xgrammar.GrammarCompiler(info)
        self._compiled: dict[str, object] = {}

    def processor(self, schema: dict):
        """A logits processor that lets the model write only JSON matching ``schema``."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._compiled:
            self._compiled[key] = self._compiler.compile_json_schema(key)
        return self._xgrammar.contrib.hf.LogitsProcessor(self._compiled[key])
