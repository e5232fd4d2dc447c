"""Retrieval-augmented synthesis: chunk -> embed -> chromadb -> grounded QA (``synth_qa``) and VQA (``synth_vqa``).

Every row stage that makes rows (chunks from pages, pairs from chunks or images) or the index they are retrieved
from lives here: ``chunk`` (``chunk.py``), ``index`` (``index.py``), ``synth_qa`` (``synth.py``), ``synth_vqa``
(``vqa.py``); a stage that keeps, drops, scores or rewrites the rows it gets lives in ``curate.quality``. Their
building blocks are pure modules: ``units.py`` (a chunk's answerable units), ``templates.py`` (template questions),
``question_checks.py`` (what a synthesized question must pass). ``curate index`` and ``curate synth`` run the stages
over folders (``curate.orchestrate.index_folder``, ``synth_folder``).
"""
