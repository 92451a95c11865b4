"""The utilities demos at their small size: each is timed, and each variant computes the same thing."""
import pytest
import torch

from demos import utilities

pytestmark = pytest.mark.usefixtures("demo_tmpdir")  # what its libraries write to TMPDIR stays the test's


def test_bf16_autocast_is_timed_and_close_to_float32():
    result = utilities.mixed_precision("cpu", "small")
    assert set(result.timings) == {"float32", "bf16 autocast"}
    assert all(t.repeats >= 5 and t.median_s > 0 for t in result.timings.values())
    assert 0 < result.measured["bf16_error"] < 0.05   # bfloat16 rounds, but not wildly
    assert result.values["tf32_timed"] is False and result.measured["tf32_error"] is None


def test_predict_bf16_runs_the_matrix_products_in_bfloat16():
    model = utilities.mlp_block(16)
    assert utilities.predict_bf16(model, torch.randn(4, 16)).dtype == torch.bfloat16
    assert utilities.predict(model, torch.randn(4, 16)).dtype == torch.float32


def test_tf32_matmuls_restores_the_precision():
    before = torch.get_float32_matmul_precision()
    with utilities.tf32_matmuls():
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == before


def test_loader_epochs_are_timed_with_and_without_workers():
    result = utilities.loader_workers("cpu", "small")
    assert list(result.timings) == ["workers 0", "workers 2"]
    assert all(t.repeats >= 5 for t in result.timings.values())


def test_workers_yield_the_same_examples_as_the_main_process():
    dataset = utilities.AugmentedImages(8, 16)
    batches = [list(torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=n)) for n in (0, 2)]
    for (a, la), (b, lb) in zip(*batches):
        assert torch.equal(a, b) and torch.equal(la, lb)
    assert utilities.epoch(torch.utils.data.DataLoader(dataset, batch_size=4), "cpu") == 8
