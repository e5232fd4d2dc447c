"""Evaluation: base vs fine-tuned models on held-out medical sets, with confidence intervals and paired tests.

``curate eval MODEL --set SET -o OUT`` and ``curate eval --compare A B`` call these. Modules: ``sets`` (catalog
entries, QA files and export splits as items), ``prompts`` (few-shot prompts from ``curate/prompts/eval.v1.yaml``),
``mcq`` (the answer parser), ``loglik`` (log-likelihood of options' text or letters, and of reference answers),
``judge`` (rubric verdicts), ``lexical`` (token F1, ROUGE-L), ``stats`` (bootstrap intervals, McNemar and sign
tests), ``models`` (loading, fingerprints, precision), ``harness`` (evaluate, compare), ``report`` (console tables)::

    from curate.evaluate import compare_models, evaluate, load_eval_set
    eval_set = load_eval_set("medqa-usmle-4-options-test", path="medqa_test.jsonl", limit=50, seed=0)
    summary = evaluate({"backend": "llamacpp"}, eval_set, "runs/eval/base")
    compare_models({"backend": "transformers", "dtype": "float32"}, {"backend": "transformers", "dtype": "float32"},
                   eval_set, "runs/eval/firstaid", tuned_adapter="runs/finetune/firstaid")
"""

from importlib import import_module

# Names resolve on first use (PEP 562), so importing ``curate.evaluate.settings`` to validate a pipeline loads no
# model or scoring code.
_EXPORTS = {
    "EvalError": "models", "LoadedModel": "models", "add_adapter": "models", "load_model": "models",
    "EvalSettings": "settings", "SettingsMismatch": "harness", "compare_models": "harness",
    "compare_runs": "harness", "evaluate": "harness", "evaluate_loaded": "harness", "read_run": "harness",
    "EvalItem": "sets", "EvalSet": "sets", "SetError": "sets", "load_eval_set": "sets",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'curate.evaluate' has no attribute '{name}'")
    return getattr(import_module(f"curate.evaluate.{_EXPORTS[name]}"), name)
