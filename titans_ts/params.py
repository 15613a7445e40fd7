"""Declarative parameter constraints: each estimator lists what its parameters may be, `validate` checks them.

An estimator keeps one table `{parameter: constraint}` and calls `validate(self, TABLE)` at the door of
`fit`; a bad value raises a ValueError that names the estimator, the parameter, what it may be and what
it got (`TitansForecaster.horizon must be an integer >= 1, got 0`), before anything else has changed.
The range checks are scikit-learn's `check_scalar`.
"""
from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass

from sklearn.utils.validation import check_scalar


class Constraint(ABC):
    """What a parameter may be: `holds(value)`, and `str()` for the error message."""

    @abstractmethod
    def holds(self, value: object) -> bool:
        """Whether `value` is allowed."""


@dataclass(frozen=True)
class Interval(Constraint):
    """A number (`integer=True`: an int, never a bool; never NaN) in the interval from `lo` to `hi`, bounds
    included as `closed` says ("both", "left", "right", "neither"); None leaves that side open. `noun`
    names it in messages ("a probability"; default "a number" or "an integer")."""

    lo: float | None = None
    hi: float | None = None
    closed: str = "both"
    integer: bool = False
    noun: str = ""

    def holds(self, value: object) -> bool:
        if isinstance(value, bool) or (isinstance(value, numbers.Real) and math.isnan(value)):
            return False
        try:
            check_scalar(value, "value", numbers.Integral if self.integer else numbers.Real, min_val=self.lo,
                         max_val=self.hi, include_boundaries=self.closed)
        except (TypeError, ValueError):
            return False
        return True

    def __str__(self) -> str:
        kind = self.noun or ("an integer" if self.integer else "a number")
        if self.lo is None and self.hi is None:
            return kind
        if self.hi is None:
            return f"{kind} {'>=' if self.closed in ('both', 'left') else '>'} {self.lo}"
        if self.lo is None:
            return f"{kind} {'<=' if self.closed in ('both', 'right') else '<'} {self.hi}"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        return f"{kind} in {left}{self.lo}, {self.hi}{right}"


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of a few allowed values."""

    options: tuple

    def holds(self, value: object) -> bool:
        return any(value is o or (type(value) is type(o) and value == o) for o in self.options)

    def __str__(self) -> str:
        return f"one of {self.options}"


@dataclass(frozen=True)
class Either(Constraint):
    """Either constraint holds."""

    first: Constraint
    second: Constraint

    def holds(self, value: object) -> bool:
        return self.first.holds(value) or self.second.holds(value)

    def __str__(self) -> str:
        first = "None" if self.first == NONE else str(self.first)
        return f"{first} or {self.second}"


NONE = OneOf((None,))


def integer(lo: int | None = None) -> Interval:
    """An int (not a bool) >= lo (any int: lo None)."""
    return Interval(lo, integer=True)


def optional_integer(lo: int | None = None) -> Constraint:
    """None or an int >= lo (any int: lo None)."""
    return Either(NONE, integer(lo))


def validate(estimator: object, constraints: dict[str, Constraint]) -> None:
    """Check every parameter of `estimator` named in `constraints`; ValueError on the first that fails."""
    for name, constraint in constraints.items():
        value = getattr(estimator, name)
        if not constraint.holds(value):
            raise ValueError(f"{type(estimator).__name__}.{name} must be {constraint}, got {value!r}")
