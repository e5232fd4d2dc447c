"""Retrieval-augmented synthesis: chunk -> embed -> chromadb -> grounded QA (``synth_qa``) and VQA (``synth_vqa``).

Stages: ``chunk`` (``chunk.py``), ``index`` (``index.py``), ``synth_qa`` (``synth.py``) and ``synth_vqa``
(``vqa.py``); their building blocks are pure modules (``units.py``: a chunk's answerable units; ``templates.py``:
template questions; the question checks). ``curate index`` and ``curate synth`` run them over folders
(``curate.run.index_folder``, ``curate.run.synth_folder``).
"""
