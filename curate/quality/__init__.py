"""Quality stages: keep only rows that are well-formed, supported by their sources, unique and not evaluation data.

Every row stage that keeps, drops, scores or rewrites the rows it is given lives here (a stage that makes rows
lives in ``curate.rag``). Registered stages (each its own module, config and drop reasons; the runner counts drops
per reason and writes every dropped row to the stage's ``rejects.jsonl`` with its detail):

- ``select`` (``select.py``): keep rows by kind, source and minimum text length.
- ``heuristics`` (``heuristics.py``): length, truncation, repetition, refusals, meta phrases, banned words,
  non-English.
- ``pii`` (``pii.py``): e-mails, phone numbers and URLs replaced by placeholders (no drops).
- ``grounding`` (``grounding.py``): numbers, negation, lexical and embedding support of an answer by its
  ``context``.
- ``decontaminate`` (``decontaminate.py``): long n-gram or near-duplicate overlap with evaluation sets.
- ``dedup`` (``dedup.py``, stateful): exact, MinHash near-duplicate and optional embedding duplicates.
- ``ifd`` (``ifd.py``): data selection by Instruction-Following Difficulty, scored by a local model.
- ``review`` (``review.py``): rows a person read as wrong (``curate review`` writes the verdicts); the card reports
  the sample's share of correct rows.
- ``judge`` (``judge.py``, optional): an LLM grades faithfulness, accuracy, relevance, clarity and safety; low
  scores, unsafe answers and replies that stay malformed after retries (``judge_unscored``) are dropped.

A typical order is heuristics -> pii -> grounding -> judge -> decontaminate -> dedup: cheap filters first, the
LLM judge only on what survived them, dedup last so that the kept copy of a duplicate is one that passed every
other check.

``minhash.py`` and ``text.py`` are their shared building blocks; ``curate filter`` runs a list of these stages
over a folder of rows (``curate.orchestrate.run_filters``).
"""
