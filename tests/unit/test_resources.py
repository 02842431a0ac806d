import pytest

from hybrid_policy.resources import CPU, GPU, MAX_AMOUNT, MEMORY, QuantityError, parse_quantity


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


@pytest.mark.parametrize(
    ("resource", "text", "expected"),
    [
        (MEMORY, "1Ei", 2**60),
        (MEMORY, "4Ei", MAX_AMOUNT),  # the largest amount is accepted
        (MEMORY, "1E", 10**18),  # exa, not an exponent
        (MEMORY, "1E3", 1000),
        (MEMORY, "1e+3", 1000),
        (MEMORY, "+1k", 1000),
        (MEMORY, "1.5Ki", 1536),
        (CPU, ".5", 500),
        (CPU, "5.", 5000),
        (CPU, "1.5e-3", 2),  # 1.5 millicores, rounded up
        (CPU, "1e-999999", 1),
        (CPU, 0.1, 100),  # the float's shortest form, not its binary expansion
        (GPU, "-0", 0),
        (GPU, "0e5", 0),
    ],
)
def test_every_kubernetes_notation(resource: str, text: str | float, expected: int) -> None:
    assert parse_quantity(resource, text) == expected


@pytest.mark.parametrize(
    ("resource", "value", "says"),
    [
        (CPU, "1e999999", "above the largest amount, 2**62 millicores"),
        (GPU, "1e400", "above the largest amount, 2**62 units"),
        (MEMORY, "5Ei", "above the largest amount, 2**62 bytes"),
        pytest.param(GPU, 10**400, "above the largest amount", id="int-1e400"),
        pytest.param(GPU, 10**5000, "above the largest amount", id="too-long-for-str"),
        (GPU, 1e308, "above the largest amount"),
        (GPU, float("nan"), "not finite"),
        (GPU, float("inf"), "not finite"),
        (GPU, -1, "negative"),
        (GPU, "-1e-9", "negative"),
        (GPU, "1e99999999999999999999", "exponent out of range"),
        (GPU, True, "not a quantity"),
        (GPU, None, "not a quantity"),
        (GPU, ["1"], "not a quantity"),
        (GPU, {"value": "1"}, "not a quantity"),
        (GPU, "1e", "not a quantity"),
        (GPU, ".", "not a quantity"),
        (GPU, "1.2.3", "not a quantity"),
        (GPU, "1 Gi", "not a quantity"),
        (GPU, "\u0661", "not a quantity"),  # an Arabic-Indic one is not a Kubernetes digit
    ],
)
def test_quantities_out_of_range_or_of_the_wrong_type_raise_quantity_error(
    resource: str, value: object, says: str
) -> None:
    with pytest.raises(QuantityError) as err:
        parse_quantity(resource, value)
    assert str(err.value).startswith(f"{resource}: ")
    assert says in str(err.value)
    assert len(str(err.value)) < 150


def test_a_hundred_thousand_digits_are_read_exactly() -> None:
    assert parse_quantity(CPU, "1." + "0" * 100_000 + "1") == 1001  # 1 core and a sliver
    assert parse_quantity(CPU, "0." + "0" * 100_000 + "15e100004") == 1_500_000
    assert parse_quantity(MEMORY, "1" + "0" * 100_000 + "e-99997") == 1000
