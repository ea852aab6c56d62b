"""``--dry-run``: what a study would do, without loading data or training."""

from __future__ import annotations

from rich.table import Table

from tuning.config import recipe
from tuning.config.schema import CategoricalParam, StudyConfig


def _space_line(spec) -> str:
    if isinstance(spec, CategoricalParam):
        return "one of " + ", ".join(map(str, spec.choices))
    scale = " (log)" if spec.log else ""
    step = f" step {spec.step}" if getattr(spec, "step", None) not in (None, 1) else ""
    return f"{spec.type} {spec.low} .. {spec.high}{scale}{step}"


def describe_plan(config: StudyConfig) -> Table:
    """A table of the validated study: data, space, search, training, tracking, export."""
    d, s, t = config.dataset, config.search, config.training
    table = Table(title=f"plan for study {config.name} (dry run: nothing is trained)", show_header=False)
    source = d.source + (f" ({d.path}, target {d.target})" if d.path else "")
    table.add_row("dataset", source)
    table.add_row("task", d.task or "inferred from the target")
    table.add_row("split", f"test {d.test_size}, validation {d.valid_size} of the rest, seed {d.seed}")
    if recipe.applies(config) and recipe.read_facts(config) is None:
        table.add_row("recipe", "tables: what the file leaves out of space, trials, epochs, batch size, patience "
                      "and embeddings is sized from the rows once they load (the rows below show the rest)")
    shaped = {"images": f"none: images {'(28, 28, 1)' if d.channels else '(28, 28)'} from flat pixels",
              "sequences": f"none: word ids padded / cut to {d.sequence_length}, vocabulary {d.num_words}"}
    table.add_row("preprocessing", shaped.get(d.row_shape, config.preprocessing.scaling))
    inputs = getattr(config.model, "inputs", None)
    if inputs:
        table.add_row("model inputs", "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in inputs.items()))
    fixed = config.model.fixed_params()
    table.add_row("fixed model args", ", ".join(f"{k}={v}" for k, v in fixed.items()) or "(estimator defaults)")
    for name, spec in config.space.items():
        table.add_row(f"space {name}", _space_line(spec))
    pruner = "median" if s.multi_objective and s.pruner != "none" else s.pruner
    backend = f"{s.backend}" + (f", sampler {s.sampler}, pruner {pruner}" if s.backend == "optuna" else "")
    table.add_row("search", f"{backend}, {s.n_trials} trials, cv {s.cv}, seed {s.seed}, n_jobs {s.n_jobs}, "
                  f"workers {s.workers}"
                  + (f", stack {s.stack} (trials trained {s.stack} at a time as one model)" if s.stack > 1 else "")
                  + (f", timeout {s.timeout:g} s" if s.timeout else ""))
    table.add_row("metric", s.metric)
    if s.multi_objective:
        others = ", ".join(f"{name} ({direction})" for name, direction in s.other_objectives())
        pruner = "" if s.pruner == "none" else "; pruned on the metric by a median rule across trials"
        table.add_row("objectives", f"the metric, then {others}: a Pareto front{pruner}")
    table.add_row("checkpoints", _checkpoint_line(s.checkpoint, s.cv, s.stack))
    es = t.early_stopping
    table.add_row("training", f"epochs {t.epochs}, batch {t.batch_size}, early stopping "
                  + (f"on {es.monitor}, patience {es.patience}" if es.enabled else "off"))
    table.add_row("mlflow", f"{config.mlflow.tracking_uri or 'MLflow default store'}, experiment {config.experiment_name}")
    e = config.export.ensemble
    model = (f"{e.method} ensemble of {e.size}" + (f" picks among the {e.candidates} best trials" if e.method == "greedy"
             else " best trials") if e.enabled else "the best trial")
    if s.multi_objective:
        choose = config.export.choose
        where = ", ".join(f"{k} {v}" for k, v in (choose.where if choose else {}).items())
        best = (choose.best if choose else None) or "the metric"
        model = f"the Pareto front's best {best}" + (f" where {where}" if where else "")
    table.add_row("export", f"{config.export_dir}: {model}, trained on {config.export.train_on}")
    return table


def _checkpoint_line(setting, cv, stack: int) -> str:
    """How often a trial writes a checkpoint (search.checkpoint), and which trials resume from one."""
    if setting is None:
        return "off: a killed trial starts over"
    every = " or ".join(part for part in (f"{setting.every_epochs} epochs" if setting.every_epochs else "",
                                          f"{setting.every_s:g} s" if setting.every_s else "") if part)
    if cv != "validation" or stack > 1:
        return f"none written ({'cv ' + str(cv) if cv != 'validation' else 'stacked trials'}: a killed trial starts over)"
    return f"every {every} of training, whichever first: a killed trial resumes from its last one"
