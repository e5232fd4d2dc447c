"""What a run delivers after its row stages, each a ``curate.steps.Step``: the exported dataset, its upload, a
fine-tuned adapter, the base and tuned model's answers side by side, both models evaluated on a held-out set, and
ablations over several training sets.

Modules: ``specs`` (the pipeline keys, pydantic only), ``steps`` (export, push, finetune, compare, evaluate),
``ablate`` (``curate ablate``). Libraries (``curate.export``, ``curate.train``, ``curate.evaluate``) load only when a
step builds.
"""
