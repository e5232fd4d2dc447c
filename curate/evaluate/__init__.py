"""Evaluation: base vs fine-tuned models on held-out medical sets, with confidence intervals and paired tests.

``curate eval MODEL --set SET -o OUT`` and ``curate eval --compare A B`` call these. Modules: ``sets`` (catalog
entries, QA files and export splits as items), ``prompts`` (few-shot prompts from ``curate/prompts/eval.v1.yaml``),
``mcq`` (the answer parser), ``loglik`` (log-likelihood of options' text or letters, and of reference answers),
``judge`` (rubric verdicts), ``lexical`` (token F1, ROUGE-L), ``stats`` (bootstrap intervals, McNemar and sign
tests), ``models`` (loading, fingerprints, precision), ``run`` (evaluate, compare), ``report`` (console tables)::

    from curate.evaluate import compare_models, evaluate, load_eval_set
    eval_set = load_eval_set("medqa-usmle-4-options-test", path="medqa_test.jsonl", limit=50, seed=0)
    summary = evaluate({"backend": "llamacpp"}, eval_set, "runs/eval/base")
    compare_models({"backend": "transformers", "dtype": "float32"}, {"backend": "transformers", "dtype": "float32"},
                   eval_set, "runs/eval/firstaid", tuned_adapter="runs/finetune/firstaid")
"""

from curate.evaluate.models import EvalError, LoadedModel, add_adapter, load_model
from curate.evaluate.run import (EvalSettings, SettingsMismatch, compare_models, compare_runs, evaluate,
                                 evaluate_loaded, read_run)
from curate.evaluate.sets import EvalItem, EvalSet, SetError, load_eval_set

__all__ = ["EvalError", "EvalItem", "EvalSet", "EvalSettings", "LoadedModel", "SetError", "SettingsMismatch",
           "add_adapter", "compare_models", "compare_runs", "evaluate", "evaluate_loaded", "load_eval_set",
           "load_model", "read_run"]
