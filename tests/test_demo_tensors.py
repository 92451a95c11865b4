"""The tensor demo at its small size: what its slides say is what ran."""
import inspect

import pytest

from demos import tensors

pytestmark = pytest.mark.usefixtures("demo_tmpdir")  # what its libraries write to TMPDIR stays the test's


@pytest.fixture(scope="module")
def values():
    return tensors.tensor_basics("cpu", "small").values


def test_broadcasting_stretches_the_size_one_axis(values):
    assert values["x_shape"] == [2, 3] and values["column_shape"] == [2, 1]
    assert values["sum_shape"] == [2, 3]
    assert values["sum"] == [[10.0, 11.0, 12.0], [23.0, 24.0, 25.0]]
    assert values["x_dtype"] == "float32"


def test_a_view_shares_memory_and_a_transpose_is_not_contiguous(values):
    assert values["view_shares_storage"] and values["x_after_view_write"] == 100
    assert values["transpose_contiguous"] is False and values["transpose_view_fails"] is True
    assert values["reshape_copied"] is True


def test_from_numpy_shares_the_arrays_memory(values):
    assert values["numpy_after_edit"] == values["tensor_after_edit"] == [7.0, 0.0, 0.0]
    assert values["numpy_dtype"] == "float64"  # NumPy's default dtype comes along


def test_to_the_same_device_is_no_copy(values):
    assert values["to_same_device_is_no_copy"] is True and values["moved_to"] == "cpu"


def test_shown_functions_fit_a_slide():
    for f in (tensors.shapes_and_broadcasting, tensors.views_share_memory,
              tensors.numpy_shares_memory, tensors.default_device):
        assert len(inspect.getsource(f).splitlines()) <= 12, f.__name__
