"""The declarative parameter constraints: what each allows, and messages that name estimator and field."""
import numpy as np
import pytest

from titans_ts.params import Interval, OneOf, integer, optional_integer, validate


class Estimator:
    def __init__(self, **params):
        self.__dict__.update(params)


def test_constraints_allow_exactly_their_values():
    assert integer(1).holds(3) and integer(1).holds(np.int64(1))
    assert not any(integer(1).holds(v) for v in (0, True, 2.0, "3", None))
    assert optional_integer(2).holds(None) and not optional_integer(2).holds(1)
    half_open = Interval(0, 1, closed="left")
    assert half_open.holds(0) and half_open.holds(0.5) and not half_open.holds(1.0)
    assert not any(half_open.holds(v) for v in (float("nan"), False, "0.5"))
    assert Interval(0, 0.5, closed="neither").holds(0.25) and not Interval(0, 0.5, closed="neither").holds(0)
    assert OneOf(("mean", None)).holds(None) and not OneOf(("mean", None)).holds(0)
    assert not OneOf((True, False)).holds(1)  # 1 == True, but it is not one of the flags


@pytest.mark.parametrize("constraint, value, message", [
    (integer(1), 0, "Estimator.x must be an integer >= 1, got 0"),
    (optional_integer(2), 2.5, "Estimator.x must be None or an integer >= 2, got 2.5"),
    (Interval(0, 1, closed="left"), 1, r"Estimator.x must be a number in \[0, 1\), got 1"),
    (Interval(0, 1, noun="a probability"), 1.5, r"Estimator.x must be a probability in \[0, 1\], got 1.5"),
    (OneOf(("a", "b")), "c", r"Estimator.x must be one of \('a', 'b'\), got 'c'"),
])
def test_validate_names_the_estimator_the_field_and_the_value(constraint, value, message):
    validate(Estimator(x=1, y=1), {"y": integer(1)})
    with pytest.raises(ValueError, match=f"^{message}$"):
        validate(Estimator(x=value), {"x": constraint})
