"""Renderers of the lab studies' and the precision comparison's figures
(``readme_figures.RENDERERS`` uses them): ``benchmarks/results/memorization.json``,
``autofocus.json`` and ``precision.json``."""

from __future__ import annotations

import math


def _value(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _stat(stat: dict | None) -> str:
    """``mean ± sd`` of a figure across seeds; the mean alone for one seed."""
    if not stat or stat.get("mean") is None or math.isnan(stat["mean"]):
        return "n/a"
    sd = stat.get("sd")
    spread = "" if sd is None or math.isnan(sd) else f" ± {sd:.3f}"
    return f"{stat['mean']:.3f}{spread}"


# (column, name across seeds), after model, noise and seeds
_MEMORIZATION_COLUMNS = (
    ("fit (train acc., noised labels)", "fit"),
    ("train acc., true labels", "train_accuracy_clean"),
    ("test {kind}", "test_f1"),
    ("Gini of loss", "gini"),
    ("CSR", "csr"),
    ("mean score, all epochs", "mean_score"),
    ("mean score, last epoch", "mean_score_last_epoch"),
)
_SUMMARY_FIELDS = {"fit": "train_accuracy"}  # a schema-1 summary's name, where it differs


def _memorization_rows(record: dict) -> list[dict]:
    """Per (model, noise level): each figure as mean and sd across seeds. Schema 1 (one seed,
    before seeds were kept apart) as one seed each, without an sd."""
    if record.get("schema", 1) >= 2:
        return list(record.get("across_seeds", {}).values())
    rows = []
    for entry in record["entries"].values():
        summary = entry["summary"]
        row = {
            name: {"mean": summary.get(_SUMMARY_FIELDS.get(name, name)), "sd": None, "seeds": 1}
            for _, name in _MEMORIZATION_COLUMNS
        }
        rows.append(
            {
                **row,
                "model": entry["model"],
                "noise": entry["noise"],
                "parameters": entry["parameters"],
                "seeds": [record["settings"]["seed"]],
                "test_f1_kind": summary.get("test_f1_kind", "macro-F1"),
                "first_epoch_95_percent_fit": [summary.get("first_epoch_95_percent_fit")],
            }
        )
    return rows


def _training(name: str, spec: dict) -> str:
    """One model's training as its results record it (schema 1: a constant rate, post-norm)."""
    layers = "pre-norm" if spec.get("norm_first") else "post-norm"
    training = spec.get("training")
    if not training:
        return f"{name}: {layers}"
    steps = training["total_steps"]
    clip = training["clip_norm"]
    return (
        f"{name}: {layers}, peak learning rate {training['learning_rate']:g}, "
        f"{training['warmup_steps']} of {steps} steps warming up, then {training['schedule']}"
        + ("" if clip is None else f", gradient norm clipped at {clip:g}")
    )


def memorization(record: dict) -> str:
    """Rabin et al.'s measures per model and label-noise level, as the run measured them: mean ±
    sd over the seeds (sample sd; none for one seed)."""
    settings = record["settings"]
    sizes = record["dataset"]["sizes"]
    models = record["models"]
    rows = sorted(_memorization_rows(record), key=lambda r: (r["parameters"], r["noise"]))
    if not rows:
        return "No (model, noise level) has finished all its seeds yet."
    seeds = rows[0]["seeds"]
    if record.get("schema", 1) >= 2:
        seeding = (
            f"seeds {seeds[0]}–{seeds[-1]} ({len(seeds)}: label-noise draw, initialisation and "
            f"batch order), data of seed {settings['data_seed']}"
            if len(seeds) > 1
            else f"seed {seeds[0]}, data of seed {settings['data_seed']}"
        )
        optimiser = f"Adam, batch {settings['batch_size']}"
    else:
        seeding = f"seed {settings['seed']}"
        optimiser = (
            f"Adam at a constant learning rate {settings['learning_rate']:g}, batch "
            f"{settings['batch_size']}"
        )
    lines = [
        f"Dataset {settings['dataset']} ({record['dataset'].get('language', '?')}): train "
        f"{sizes['train']}, valid {sizes['valid']}, test {sizes['test']} programs; "
        f"{settings['noise_kind']} noise; {settings['epochs']} epochs; programs cut at "
        f"{settings['max_len']} tokens; CSR over {sizes['csr_programs']} test programs "
        f"({sizes['csr_variants']} single renamings, "
        + ("every variable" if settings.get("renamings") is None else f"≤{settings['renamings']}")
        + f" per program); {seeding}. Models: "
        + ", ".join(f"{name} ({spec['parameters']:,} parameters)" for name, spec in models.items())
        + f". Training: {optimiser}; "
        + "; ".join(_training(name, spec) for name, spec in models.items())
        + "."
        + (" Mean ± sd over the seeds (sample sd):" if len(seeds) > 1 else ""),
        "",
        "| model | noise | seeds | "
        + " | ".join(
            column.format(kind=rows[0].get("test_f1_kind", "macro-F1"))
            for column, _ in _MEMORIZATION_COLUMNS
        )
        + " | first epoch ≥95% fit, per seed |",
        "|---|---|---|" + "---|" * (len(_MEMORIZATION_COLUMNS) + 1),
    ]
    for row in rows:
        firsts = ", ".join(
            "never" if first is None else str(first) for first in row["first_epoch_95_percent_fit"]
        )
        cells = [_stat(row.get(name)) for _, name in _MEMORIZATION_COLUMNS]
        lines.append(
            f"| {row['model']} | {row['noise']}% | {len(row['seeds'])} | "
            + " | ".join(cells)
            + f" | {firsts} |"
        )
    return "\n".join(lines)


_AUTOFOCUS_ROWS = (
    ("test_accuracy", "test accuracy"),
    ("pearson_mean", "Pearson of a(s) and −δ(s), mean per program"),
    ("partial_mean", "… partial, given statement size"),
    ("size_pearson_mean", "Pearson of size alone"),
    ("spearman_mean", "Spearman, mean per program"),
    ("minimal_kept_share_mean", "minimal program: share of statements kept"),
    ("minimal_keeps_prediction", "minimal program keeps the prediction"),
)


def autofocus(record: dict) -> str:
    """Mean ± sd over seeds of each encoder's accuracy and attention-deletion correlation."""
    groups = record.get("across_seeds", {})
    if not groups:
        return "No run has finished all its seeds yet."
    names = list(groups)
    runs = list(record.get("runs", {}).values())
    minutes = sum(r["seconds"]["training"] + r["seconds"]["analysis"] for r in runs) / 60
    settings = runs[0]["settings"] if runs else {}
    data = runs[0]["data"] if runs else {}
    lines = [
        f"{groups[names[0]]['seeds']} seeds (split, initialisation and batch order), "
        f"{settings.get('language', '?')} programs: train {data.get('train', '?')}, test "
        f"{data.get('test', '?')}; minimal-program search on the first "
        f"{settings.get('minimal_limit', '?')} test programs; {len(runs)} runs, "
        f"{minutes:.0f} min of training and analysis in all. Mean ± sd over seeds:",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key, label in _AUTOFOCUS_ROWS:
        cells = []
        for name in names:
            stat = groups[name].get(key)
            if not stat or stat["mean"] is None or math.isnan(stat["mean"]):
                cells.append("n/a")
                continue
            sd = "" if stat["sd"] is None or math.isnan(stat["sd"]) else f" ± {stat['sd']:.3f}"
            cells.append(f"{stat['mean']:.3f}{sd}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def precision(record: dict) -> str:
    """bfloat16 against float32 per white-box method (``benchmarks/precision_compare.py``)."""
    seconds = record["seconds"]
    lines = [
        f"The default model under `{record['protocol']}`, {len(record['tasks'])} prompts "
        f"({', '.join(record['tasks'])}), the same completion for both precisions, scores over "
        f"the model's tokens; {record['machine']['cpu_count']} CPU cores, float32 "
        f"{seconds['float32']:.0f} s and bfloat16 {seconds['bfloat16']:.0f} s in all "
        f"({record['date'][:10]}, commit {str(record['commit'])[:8]}).",
        "",
        "| method | Spearman, mean (lowest) | top-10 overlap, mean (lowest) |",
        "|---|---|---|",
    ]
    for method, figures in record["methods"].items():
        lines.append(
            f"| {method} | {_value(figures['spearman_mean'])} ({_value(figures['spearman_min'])}) "
            f"| {_value(figures['top10_mean'], 2)} ({_value(figures['top10_min'], 2)}) |"
        )
    return "\n".join(lines)


def _interval(value: dict | None, digits: int = 3, scale: float = 1.0) -> str:
    if value is None:
        return "–"
    return (
        f"{scale * value['estimate']:.{digits}f} "
        f"[{scale * value['low']:.{digits}f}, {scale * value['high']:.{digits}f}]"
    )


def faithfulness_regeneration(record: dict) -> str:
    """The regeneration methods on more tasks, a run of their own (``benchmarks/faithfulness.py
    --methods bert_masking,occlusion,shap``): the same table, without the figures of the main
    run (hierarchical leave-one-out, the endpoint)."""
    return faithfulness({**record, "hierarchical_in_run": None, "endpoint_likelihood": None})


def faithfulness(record: dict) -> str:
    """Alignment beside faithfulness per method (``benchmarks/faithfulness.py``)."""
    counts = record["tasks_by_benchmark"]
    plan = record.get("tasks_planned", record["tasks"])
    measured = len(record["tasks"])
    in_plan = sum(task in plan for task in record["tasks"])
    stopped = f"{in_plan} of the {len(plan)} planned" if in_plan < len(plan) else ""
    if in_plan < measured:  # the store also holds tasks of an earlier, smaller plan
        stopped += f"{', and ' if stopped else ''}{measured - in_plan} of an earlier plan"
    stopped = f" ({stopped})" if stopped else ""
    regenerated = len(record.get("perturbation_task_ids", ()))
    from codefocus.methods import REGISTRY  # the regeneration methods: the perturbation family

    family = [
        row["method"]
        for row in record["methods"]
        if row["method"] in REGISTRY and REGISTRY[row["method"]].family == "perturbation"
    ]
    regeneration = (
        "occlusion, BERT masking and SHAP not run"
        if regenerated == 0 or not family
        else f"{', '.join(family)} on {regenerated} of them"
    )
    if regenerated and family and regenerated >= measured:
        regeneration = "every method on every task"
    left_out = "deleted" if record.get("perturbation", "delete") == "delete" else "substituted"
    lines = [
        f"{record['model']}, {measured} labelled tasks{stopped} ({counts.get('humaneval', 0)} "
        f"HumanEval, {counts.get('mbpp', 0)} MBPP; {regeneration}), words {left_out}, "
        f"K = {record['k']}, "
        f"{record['random_orders']} random orders, {record['lds_samples']} held-out ablations; "
        f"F1@10 in %, AOPC in nats per code token; 95% bootstrap intervals over tasks; "
        f"{record['machine']['cpu_count']} CPU cores, attribution "
        f"{record['attribution']['seconds'] / 60:.0f} min and faithfulness "
        f"{record['faithfulness']['seconds'] / 60:.0f} min "
        f"({record['date'][:10]}, commit {str(record['commit'])[:8]}).",
        "",
        "| method | tasks | F1@10 | AOPC (comprehensiveness) | AOPC (sufficiency) "
        "| AOPC, lowest-ranked | LDS | code changed | s/task |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in record["methods"]:
        changed = row["code_changed"]
        lines.append(
            f"| {row['method']} | {row['tasks']} | {_interval(row['f1_at_10'], 1, 100)} "
            f"| {_interval(row['aopc'], 4)} | {_interval(row['aopc_sufficiency'], 4)} "
            f"| {_interval(row['lowest_aopc'], 4)} | {_interval(row['lds'], 2)} "
            f"| {'–' if changed is None else f'{100 * changed:.0f}%'} "
            f"| {_value(row['seconds_per_task'], 1)} |"
        )
    lines += faithfulness_reading(record["methods"])
    hierarchical = record.get("hierarchical_in_run")
    if hierarchical:
        lines += ["", hierarchical_reading(hierarchical)]
    endpoint = record.get("endpoint_likelihood")
    if endpoint and endpoint.get("server") and endpoint.get("date"):
        sequence = _value(endpoint["max_abs_diff_sequence"])
        loo = _value(endpoint["max_abs_diff_loo"])
        rho = _value(endpoint["spearman_loo_mean"], 2)
        where = f"{endpoint['server']}, the packaged GGUF; {endpoint['date'][:10]}"
        lines += [
            "",
            f"Likelihood through an endpoint (`benchmarks/endpoint_likelihood.py`: {where}): the "
            f"largest difference from the white-box computation is {sequence} nats in "
            f"log p(code ∣ input) and {loo} nats in a leave-one-out score; the two leave-one-out "
            f"rankings have a Spearman correlation of {rho} (mean over tasks).",
        ]
        if endpoint.get("lead") and endpoint.get("max_abs_diff_sequence_without_lead"):
            lines[-1] += (
                f" Both sides read the input after the GGUF's lead token (`{endpoint['lead']}`), "
                f"which the server prepends; against the white-box model reading the input "
                f"alone, log-probabilities differ by up to "
                f"{_value(endpoint['max_abs_diff_sequence_without_lead'])} nats and the "
                f"leave-one-out rankings correlate at "
                f"{_value(endpoint['spearman_loo_without_lead_mean'], 2)} "
                f"([Models](models.md) says why)."
            )
    return "\n".join(lines)


def hierarchical_reading(hierarchical: dict) -> str:
    """Hierarchical against full leave-one-out, HumanEval and MBPP apart: an MBPP task text is one
    line, where hierarchical leave-one-out is full leave-one-out (recall 1 by construction)."""
    parts = []
    for benchmark, name in (("humaneval", "HumanEval"), ("mbpp", "MBPP")):
        rows = [r for r in hierarchical["tasks"] if r["task"].lower().startswith(benchmark)]
        if not rows:
            continue
        full = sum(r["full_seconds"] or 0.0 for r in rows)
        fast = sum(r["hierarchical_seconds"] or 0.0 for r in rows)
        recall = 100 * sum(r["top_recall"] for r in rows) / len(rows)
        speedup = _value(full / fast if fast else None, 2)
        one_line = " (one line each: there it is full leave-one-out)" if benchmark == "mbpp" else ""
        parts.append(
            f"on the {len(rows)} {name} tasks{one_line}, {fast:.0f} s against {full:.0f} s "
            f"(speed-up {speedup}×) and {recall:.0f}% of full leave-one-out's "
            f"top-{hierarchical['k']} words found"
        )
    return (
        "Hierarchical leave-one-out against full leave-one-out on the same tasks of this run: "
        + "; ".join(parts)
        + ". Seconds are wall time and carry this machine's run-to-run spread."
    )


def faithfulness_reading(methods: list[dict]) -> list[str]:
    """What the faithfulness table says, computed from it: how alignment and faithfulness rank
    the methods run on every task, which methods beat the random control, and which rank the
    words that matter to the model last rather than first."""
    from scipy.stats import spearmanr

    control = next((row for row in methods if row["method"] == "random"), None)
    tasks = max((row["tasks"] for row in methods), default=0)
    ranked = [row for row in methods if row["tasks"] == tasks and row["f1_at_10"] and row["aopc"]]
    if control is None or len(ranked) < 3:
        return []
    rho = spearmanr(
        [row["f1_at_10"]["estimate"] for row in ranked], [row["aopc"]["estimate"] for row in ranked]
    ).statistic
    chance = control["aopc"]
    above = [row["method"] for row in ranked if row["aopc"]["low"] > chance["high"]]
    inverted = [
        row["method"]
        for row in ranked
        if row["lowest_aopc"] and row["lowest_aopc"]["estimate"] > row["aopc"]["estimate"]
    ]
    clearly = [
        row["method"]
        for row in ranked
        if row["lowest_aopc"] and row["lowest_aopc"].get("low", 0.0) > row["aopc"]["high"]
    ]
    if rho >= 0.5:
        meaning = "the methods that agree more with the programmers also tend to pick the words"
        meaning += " the model's code depends on"
    elif rho <= -0.5:
        meaning = "the methods that agree more with the programmers tend to pick words the"
        meaning += " model's code depends on less"
    else:
        meaning = "agreeing with the programmers says little about faithfulness here"
    correlation = (
        f"Over the {len(ranked)} methods run on all {tasks} tasks, the Spearman correlation "
        f"between F1@10 and AOPC (point estimates) is {rho:.2f}: {meaning}. "
        if len(ranked) >= 5  # fewer methods: a rank correlation says nothing
        else ""
    )
    return [
        "",
        f"{correlation}AOPC interval "
        f"wholly above the random control's ({_interval(chance, 4)}): "
        f"{', '.join(above) if above else 'none'}. Lowest-ranked words moving the code's "
        f"log-probability more than the top-ranked ones, in the point estimates (the ranking "
        f"upside down for the model): {', '.join(inverted) if inverted else 'none'}; with the "
        f"two intervals apart: {', '.join(clearly) if clearly else 'none'}.",
    ]


def faithfulness_likelihood(record: dict) -> str:
    """The likelihood methods beside BERT masking: seconds per task, F1@10 and their agreement
    (``benchmarks/faithfulness.py``, ``agreement_with_bert_masking``)."""
    rows = {row["method"]: row for row in record["methods"]}
    names = [
        m for m in ("bert_masking", "loo_logprob", "hierarchical_loo", "contextcite") if m in rows
    ]
    cells = [
        f"`{m}` {_value(rows[m]['seconds_per_task'], 1)} s per task and F1@10 "
        f"{_interval(rows[m]['f1_at_10'], 1, 100)} ({rows[m]['tasks']} tasks)"
        for m in names
    ]
    lines = [
        f"Measured by `benchmarks/faithfulness.py` ({record['model']}, "
        f"{record['machine']['cpu_count']} CPU cores, the model's greedy code, words deleted; "
        f"{record['date'][:10]}, commit {str(record['commit'])[:8]}): " + "; ".join(cells) + "."
    ]
    agreement = record.get("agreement_with_bert_masking")
    if agreement:
        parts = [
            f"`{method}` Spearman {_value(entry['spearman_mean'], 2)}, top-{agreement['k']} "
            f"overlap {_value(entry['top_overlap_mean'], 2)}"
            for method, entry in agreement["methods"].items()
        ]
        tasks = sorted({t for entry in agreement["methods"].values() for t in entry["tasks"]})
        lines += [
            "",
            f"Agreement with BERT masking, mean over the {len(tasks)} tasks that have both "
            f"({', '.join(tasks)}): " + "; ".join(parts) + ".",
        ]
    return "\n".join(lines)


def cross_prompt_batching(record: dict) -> str:
    """Gradients of several prompts in one padded batch against one prompt at a time
    (``benchmarks/cross_prompt_batching.py``)."""
    counts = {"HumanEval": 0, "Mbpp": 0}
    for task in record["task_ids"]:
        counts[task.split("/")[0]] = counts.get(task.split("/")[0], 0) + 1
    lines = [
        f"{record['model']} ({record['dtype'].removeprefix('torch.')}, {record['device']}), "
        f"{counts['HumanEval']} HumanEval and {counts['Mbpp']} MBPP prompts, code = the "
        f"reference solution; {record['machine']['cpu_count']} CPU cores "
        f"({record['date'][:10]}, commit {str(record['commit'])[:8]}). One at a time ran "
        "before and after the batches; the faster run is the baseline.",
        "",
        "| stage | batch | seconds | one at a time (two runs) | ratio | largest difference "
        "| bit-identical prompts | top-10 changed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stage, entry in record["stages"].items():
        runs = " / ".join(f"{s:.1f}" for s in entry["one_at_a_time_runs"])
        sizes = sorted(int(key.removeprefix("batch_")) for key in entry if key.startswith("batch_"))
        for size in sizes:
            f = entry[f"batch_{size}"]
            lines.append(
                f"| {stage} | {size} | {f['seconds']:.1f} | {runs} | {f['ratio']:.2f} "
                f"| {f['max_abs_difference']:.1e} of {f['max_abs_gradient']:.1f} "
                f"| {f['bit_identical_prompts']}/{entry['prompts']} "
                f"| {f['top10_changed_prompts']}/{entry['prompts']} |"
            )
    return "\n".join(lines)


def endpoint_likelihood(record: dict) -> str:
    """``log p(code | input)`` through an endpoint against white-box, and the leave-one-out
    scores made of it (``benchmarks/endpoint_likelihood.py``)."""
    tasks = record["tasks"]
    prompts = sum(task["prompts"] for task in tasks)
    seconds = record["seconds"]
    led = " every prompt led by BOS," if record.get("lead") else ""
    lines = [
        f"{record['server']}, on the packaged GGUF ({record['gguf']['file_type']}),{led} against "
        f"the default model white-box (float32) on the same inputs: {len(tasks)} tasks "
        f"({', '.join(task['task'] for task in tasks)}), each its model input and "
        f"{record['prompts_per_task']} single-word deletions ({prompts} prompts), the white-box "
        f"model's greedy code (at most {record['max_new_tokens']} tokens); "
        f"{record['machine']['cpu_count']} CPU cores, {seconds['endpoint'] / prompts:.0f} s per "
        f"prompt through the endpoint, {seconds['white_box'] / prompts:.1f} s white-box "
        f"({record['date'][:10]}, commit {str(record['commit'])[:8]}).",
        "",
        "| quantity | largest difference |",
        "|---|---|",
        f"| log p(code ∣ input), per prompt | {_value(record['max_abs_diff_sequence'])} nats |",
        f"| log p of one code token | {_value(record['max_abs_diff_token'])} nats (mean "
        f"{_value(record['mean_abs_diff_token'])}) |",
        f"| leave-one-out score | {_value(record['max_abs_diff_loo'])} nats |",
        "",
        f"Spearman correlation of the leave-one-out rankings: "
        f"{_value(record['spearman_loo_mean'])} on average, {_value(record['spearman_loo_min'])} "
        "at the lowest.",
    ]
    if record.get("lead"):
        lines[-1] += (
            " Against the white-box inputs without BOS (what the BOS itself changes): "
            f"log-probabilities up to {_value(record['max_abs_diff_sequence_without_lead'])} nats "
            f"apart, Spearman {_value(record['spearman_loo_without_lead_mean'])} on average."
        )
    return "\n".join(lines)
