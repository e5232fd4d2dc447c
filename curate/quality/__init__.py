"""Quality stages: keep only rows that are well-formed, supported by their sources, unique and not evaluation data.

Registered stages (each its own module, config and drop reasons; the runner counts drops per reason and writes
every dropped row to the stage's ``rejects.jsonl`` with its detail):

- ``heuristics`` (``heuristics.py``): length, truncation, repetition, refusals, meta phrases, banned words,
  non-English.
- ``pii`` (``pii.py``): e-mails, phone numbers and URLs replaced by placeholders (no drops).
- ``grounding`` (``grounding.py``): numbers, negation, lexical and embedding support of an answer by its
  ``context``.
- ``decontaminate`` (``decontaminate.py``): long n-gram or near-duplicate overlap with evaluation sets.
- ``dedup`` (``dedup.py``, stateful): exact, MinHash near-duplicate and optional embedding duplicates.

A typical order is heuristics -> pii -> grounding -> decontaminate -> dedup: cheap filters first, dedup last so
that the kept copy of a duplicate is one that passed every other check.

An LLM judge belongs here as one more ``Filter`` module (``judge.py``) once LLM backends exist: it loads its backend
in ``setup()``, returns a permanent drop (``judge_rejected`` with the judge's score and reason) for bad content,
and raises on timeouts or rate limits so that the batch is retried rather than dropped.

``apply.py`` runs a list of these stages over a folder of parquet (``curate filter``); ``minhash.py`` and
``text.py`` are their shared building blocks.
"""
