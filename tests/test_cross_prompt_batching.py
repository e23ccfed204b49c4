"""The cross-prompt batching benchmark's parts against plain torch: a padded batch gives each
prompt the gradient that prompt alone gives, up to rounding, and the same top tokens."""

import json

import numpy as np
import pytest
import torch
from benchmark_modules import load_benchmark


@pytest.fixture(scope="module")
def batching():
    return load_benchmark("cross_prompt_batching")


def plain_gradient(model, ids: list[int], target: int) -> np.ndarray:
    """The floor's own computation: a full forward, the last position's logit, its backward."""
    embeds = model.model.get_input_embeddings()(torch.tensor([ids])).detach()
    embeds.requires_grad_(True)
    model.model(inputs_embeds=embeds, use_cache=False).logits[0, -1, target].backward()
    return embeds.grad[0].numpy()


def test_a_padded_batch_gives_each_prompt_its_own_gradient(batching, tiny_qwen2):
    rows = [([5, 9, 14, 3, 8, 21, 2], 11), ([7, 4], 30), ([12, 13, 40, 41, 6], 2)]
    alone = [plain_gradient(tiny_qwen2, ids, target) for ids, target in rows]
    batched = batching.gradients(tiny_qwen2, rows)
    for want, got, (ids, _) in zip(alone, batched, rows, strict=True):
        assert got.shape == (len(ids), want.shape[1])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # a wrong target would not pass: the check can fail
    other = batching.gradients(tiny_qwen2, [(rows[0][0], 12)])[0]
    assert not np.allclose(other, alone[0], rtol=1e-5, atol=1e-6)


def test_the_script_reports_ratios_and_differences(batching, tmp_path, data_dir):
    out = tmp_path / "batching.json"
    assert batching.main(
        ["--model", "tiny", "--prompts", "2", "--batch-sizes", "2,4", "--out", str(out),
         "--data", str(data_dir)]
    ) == 0  # fmt: skip
    record = json.loads(out.read_text())
    assert record["benchmark"] == "cross_prompt_batching" and len(record["task_ids"]) == 4
    for stage in ("reading", "coding"):
        entry = record["stages"][stage]
        assert entry["prompts"] == 4 and entry["one_at_a_time_seconds"] > 0
        for size in (2, 4):
            figures = entry[f"batch_{size}"]
            assert figures["ratio"] > 0
            assert figures["max_abs_difference"] <= 1e-5 * figures["max_abs_gradient"]
            assert figures["top10_changed_prompts"] == 0


def test_bad_batch_sizes_are_one_line_errors(batching, capsys):
    with pytest.raises(SystemExit) as exit_:
        batching.main(["--batch-sizes", "1,2"])
    assert exit_.value.code == 2
    assert "at least 2" in capsys.readouterr().err
