import pytest

from hybrid_policy.resources import CPU, GPU, MEMORY, QuantityError, parse_quantity


@pytest.mark.parametrize(
    ("resource", "text", "expected"),
    [
        (CPU, "500m", 500),
        (CPU, "1.5", 1500),
        (CPU, 2, 2000),
        (MEMORY, "4Gi", 4 * 1024**3),
        (MEMORY, "1G", 10**9),
        (MEMORY, "128974848", 128974848),
        (MEMORY, "1e3", 1000),
        (GPU, "8", 8),
        (CPU, "0.0001", 1),  # rounded up, as the API server does
    ],
)
def test_parse_quantity(resource: str, text: str, expected: int) -> None:
    assert parse_quantity(resource, text) == expected


@pytest.mark.parametrize("text", ["abc", "-1", "1Qi", "", "nan", "inf"])
def test_bad_quantities_name_resource_and_value(text: str) -> None:
    with pytest.raises(QuantityError) as err:
        parse_quantity(GPU, text)
    assert GPU in str(err.value)
