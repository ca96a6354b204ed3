"""The pause before trying again, for the controller's retries and the node plugin's alike."""

from __future__ import annotations


def doubling_pause(first: float, failures: int, cap: float) -> float:
    """`first` after one failure, twice that after two, and so on up to `cap`."""
    if failures < 1:
        raise ValueError(f"a pause follows at least one failure, not {failures}")
    return min(cap, first * 2.0 ** (failures - 1))
