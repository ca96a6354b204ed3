"""Kubernetes quantities and durations as the API models read them."""

from __future__ import annotations

import pytest

from stowage.api.common import format_quantity, parse_duration, parse_quantity

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1", 1),
        (1024, 1024),
        ("1Ki", 1024),
        ("1Mi", 1024**2),
        ("50Gi", 50 * 1024**3),
        ("1.5Gi", 3 * 1024**3 // 2),
        ("2Ti", 2 * 1024**4),
        ("1Pi", 1024**5),
        ("1Ei", 1024**6),
        ("1k", 1000),
        ("500M", 500_000_000),
        ("10G", 10**10),
        ("3T", 3 * 10**12),
        ("1e3", 1000),
        ("1E6", 10**6),
        ("2.5e+2", 250),
        ("+5", 5),
        ("-5", -5),
        (".5k", 500),
        ("1.", 1),
        ("100m", 1),  # a tenth of a byte rounds up, as Quantity.Value() does
        ("1500m", 2),
    ],
)
def test_parse_quantity_follows_the_kubernetes_grammar(text: str | int, expected: int) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    "garbage",
    ["", "Gi", "1 Gi", " 1Gi", "1Gi ", "1GB", "1gi", "1KiB", "one", "1.2.3", "0x10", "1e", "--1"],
)
def test_parse_quantity_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(garbage)


def test_parse_quantity_rejects_booleans() -> None:
    with pytest.raises(ValueError):
        parse_quantity(True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (1, "1"),
        (1024, "1Ki"),
        (50 * 1024**3, "50Gi"),
        (3 * 1024**3 // 2, "1536Mi"),
        (1000, "1k"),
        (500_000_000, "500M"),
        (1023, "1023"),
        (1024**6 * 3, "3Ei"),
    ],
)
def test_format_quantity_is_exact_and_short(value: int, expected: str) -> None:
    assert format_quantity(value) == expected
    assert parse_quantity(format_quantity(value)) == value


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("2h", 7200)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("garbage", ["", "5", "5 m", "1d", "m5", "-5m", "1.5h"])
def test_parse_duration_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(garbage)
