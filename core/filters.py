"""A subscription's filter: its grammar, its bounds, and the condition it parses to.

The grammar (as Convoy users write it):

    {"data.amount": {"$gte": 100}, "subject.type": "task",
     "$or": [{"data.priority": {"$in": ["high", "urgent"]}}, {"actor": {"$exists": true}}]}

Every member of an object must hold (`$and`); a key is a dotted path from the event's
`data`, `subject` or `actor` (any other first name is a `data` field, the form filters had
before paths: `{"project_id": "p-1"}` is `{"data.project_id": "p-1"}`); its value is a
string, number, boolean or null (equality) or an object of operators, all of which must
hold. `$and` and `$or` take a non-empty list of such objects and nest.

Bounds keep a hostile tenant's filter cheap for the router: `FilterLimits`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeAlias, TypeGuard, assert_never, get_args

from core.errors import InvalidField
from core.json_value import JsonValue
from core.text_bounds import text_problem


class _Entity(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def id(self) -> str: ...


class DomainEvent(Protocol):
    """What a filter reads of an event: `core.records.DomainEvent` is one (a protocol, so
    the records, which hold filters, are not imported back)."""

    @property
    def data(self) -> Mapping[str, JsonValue]: ...
    @property
    def subject(self) -> _Entity: ...
    @property
    def actor(self) -> _Entity | None: ...


FilterValue: TypeAlias = str | int | float | bool | None
"""A value a filter compares with: what JSON holds that is not an array or an object."""

Operator = Literal["$eq", "$neq", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists"]
OPERATORS: Final[tuple[Operator, ...]] = get_args(Operator)
ORDERING: Final = frozenset({"$gt", "$gte", "$lt", "$lte"})
LISTS: Final = frozenset({"$in", "$nin"})
ROOTS: Final = ("data", "subject", "actor")
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
"""The parts of an event a path starts from; the rest of the envelope is not filtered on."""


@dataclass(frozen=True, slots=True)
class FilterLimits:
    """How large a filter may be, so evaluating one costs the router a bounded amount."""

    max_tests: int = 50
    """Path tests in the whole filter (a bare value is one, each operator is one)."""
    max_depth: int = 4
    """Nesting of `$and` / `$or`."""
    max_in_values: int = 100
    """Values of one `$in` / `$nin` list (evaluated as one hash lookup)."""
    max_path_segments: int = 10
    max_path_chars: int = 256
    max_text_chars: int = 1024
    """Characters of one string compared with."""


FILTER_LIMITS: Final = FilterLimits()


@dataclass(frozen=True, slots=True)
class PathTest:
    """One operator applied to the value at `path` (segments from an event root).

    `operand` is a tuple for `$in` / `$nin`, a boolean for `$exists`. `at` names the test in
    the document (`filter.$or[1].data.amount.$gte`) for the errors a later rule raises.
    """

    path: tuple[str, ...]
    operator: Operator
    operand: FilterValue | tuple[FilterValue, ...]
    at: str = field(default="filter", compare=False)


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every condition holds; an empty one always does."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one condition holds."""

    conditions: tuple[Condition, ...]


Condition: TypeAlias = PathTest | AllOf | AnyOf


def _always(_event: DomainEvent) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Filter:
    """A filter as written (`document`, what the API shows and the log keeps), the condition
    it parses to, and `matches`, that condition compiled once: the router's hot path calls it
    for each candidate event and never reads the document again."""

    document: Mapping[str, JsonValue]
    condition: AllOf
    matches: Callable[[DomainEvent], bool] = field(default=_always, compare=False, repr=False)


EMPTY_FILTER: Final = Filter({}, AllOf(()))


def parse_filter(
    document: Mapping[str, JsonValue], *, limits: FilterLimits | None = FILTER_LIMITS
) -> Filter:
    """The filter `document` writes, or `InvalidField` naming where it breaks the grammar
    or a bound. `limits=None` reads a stored filter, which was bounded when written: a bound
    lowered since never makes a subscription on the log unreadable."""
    parser = _Parser(limits)
    condition = parser.members(document, "filter", depth=0)
    return Filter(dict(document), condition, compile_condition(condition))


def legacy_filter(fields: Mapping[str, FilterValue]) -> Filter:
    """A filter stored before paths: equality on top-level `data` fields, each name taken
    whole (a dot in it is part of the name), exactly as it matched then."""
    condition = AllOf(
        tuple(
            PathTest(("data", name), "$eq", value, f"filter.{name}")
            for name, value in fields.items()
        )
    )
    return Filter(dict(fields), condition, compile_condition(condition))


def legacy_fields(value: Filter) -> dict[str, FilterValue] | None:
    """The filter as the equality map older records hold (values: null, boolean, Avro long,
    double, string), when that map reads back as the same condition; None when only the
    full document says it."""
    fields = {k: v for k, v in value.document.items() if _fits_the_map(v)}
    if len(fields) != len(value.document):
        return None
    return fields if legacy_filter(fields).condition == value.condition else None


def _fits_the_map(value: object) -> TypeGuard[FilterValue]:
    if isinstance(value, int) and not isinstance(value, bool):
        return _LONG_MIN <= value <= _LONG_MAX
    return value is None or isinstance(value, str | float | bool)


def _scalar_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _storable(text: str, where: str) -> str:
    """The document is kept as JSON text on the log, which cannot hold every string."""
    problem = text_problem(text)
    if problem is not None:
        raise InvalidField(where, problem)
    return text


class _Parser:
    """One walk over a document, counting tests against the limits as it goes."""

    def __init__(self, limits: FilterLimits | None) -> None:
        self.limits = limits
        self.tests = 0

    def members(self, value: object, where: str, *, depth: int) -> AllOf:
        if not isinstance(value, Mapping):
            raise InvalidField(where, f"expected an object, got {_scalar_name(value)}")
        conditions: list[Condition] = []
        for key, item in value.items():
            _storable(key, where)  # before `where` names it
            if key in ("$and", "$or"):
                conditions.append(self.combination(key, item, f"{where}.{key}", depth=depth))
            elif key.startswith("$"):
                raise InvalidField(f"{where}.{key}", "unknown operator; use $and or $or here")
            else:
                conditions.extend(self.path_tests(key, item, f"{where}.{key}"))
        return AllOf(tuple(conditions))

    def combination(self, key: str, value: object, where: str, *, depth: int) -> Condition:
        limits = self.limits
        if limits is not None and depth >= limits.max_depth:
            raise InvalidField(where, f"$and and $or nest at most {limits.max_depth} deep")
        if not isinstance(value, list) or not value:
            raise InvalidField(where, "expected a non-empty array of objects")
        parts = tuple(
            self.members(item, f"{where}[{i}]", depth=depth + 1) for i, item in enumerate(value)
        )
        return AllOf(parts) if key == "$and" else AnyOf(parts)

    def path_tests(self, key: str, value: object, where: str) -> list[PathTest]:
        path = self.path(key, where)
        if isinstance(value, Mapping):
            if not value:
                raise InvalidField(where, "expected a value or an object of operators")
            return [
                self.test(path, _storable(op, where), item, f"{where}.{op}")
                for op, item in value.items()
            ]
        if isinstance(value, list):
            raise InvalidField(where, "an array is not a value to compare with; use $in")
        return [self.test(path, "$eq", value, where)]

    def path(self, key: str, where: str) -> tuple[str, ...]:
        segments = tuple(key.split("."))
        if any(not s for s in segments):
            raise InvalidField(where, "a path is field names joined by single dots")
        limits = self.limits
        if limits is not None and (
            len(segments) > limits.max_path_segments or len(key) > limits.max_path_chars
        ):
            raise InvalidField(
                where,
                f"a path has at most {limits.max_path_segments} names"
                f" and {limits.max_path_chars} characters",
            )
        return segments if segments[0] in ROOTS else ("data", *segments)

    def test(self, path: tuple[str, ...], op: str, operand: object, where: str) -> PathTest:
        self.tests += 1
        limits = self.limits
        if limits is not None and self.tests > limits.max_tests:
            raise InvalidField(where, f"a filter holds at most {limits.max_tests} tests")
        if op not in OPERATORS:
            raise InvalidField(where, f"unknown operator; expected one of {', '.join(OPERATORS)}")
        name: Operator = op
        if name == "$exists":
            if not isinstance(operand, bool):
                raise InvalidField(where, "expected true or false")
            return PathTest(path, name, operand, where)
        if name in LISTS:
            return PathTest(path, name, self.values(operand, where), where)
        value = self.value(operand, where)
        if name in ORDERING and (value is None or isinstance(value, bool)):
            raise InvalidField(where, "expected a number or a string to compare in order")
        return PathTest(path, name, value, where)

    def values(self, operand: object, where: str) -> tuple[FilterValue, ...]:
        if not isinstance(operand, list) or not operand:
            raise InvalidField(where, "expected a non-empty array of values")
        limits = self.limits
        if limits is not None and len(operand) > limits.max_in_values:
            raise InvalidField(where, f"at most {limits.max_in_values} values")
        return tuple(self.value(item, f"{where}[{i}]") for i, item in enumerate(operand))

    def value(self, operand: object, where: str) -> FilterValue:
        if isinstance(operand, float) and not math.isfinite(operand):
            raise InvalidField(where, "expected a finite number")
        if isinstance(operand, str):
            limits = self.limits
            if limits is not None and len(operand) > limits.max_text_chars:
                raise InvalidField(where, f"longer than {limits.max_text_chars} characters")
            return _storable(operand, where)
        if operand is None or isinstance(operand, int | float | bool):
            return operand
        raise InvalidField(
            where, f"expected a string, number, boolean or null, got {_scalar_name(operand)}"
        )


# -- evaluation: a condition compiled once into closures ------------------------------------

_MISSING: Final = object()
"""What a path resolves to when the event has nothing there (`null` is a value)."""
_NUMBERS: Final = (int, float)  # compared with `type(...) in`: a boolean is not a number
_REF_FIELDS: Final = ("type", "id")
_ORDER: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}

Getter: TypeAlias = Callable[["DomainEvent"], object]
Predicate: TypeAlias = Callable[["DomainEvent"], bool]


def compile_condition(condition: Condition) -> Predicate:
    """`condition` as one function of an event. Evaluation never raises: a path the event
    lacks, or a value of another kind than the one compared with, simply does not match."""
    match condition:
        case PathTest():
            return _compile_test(condition)
        case AllOf(conditions) | AnyOf(conditions) if len(conditions) == 1:
            return compile_condition(conditions[0])
        case AllOf(()):
            return _always
        case AllOf(conditions):
            every = tuple(compile_condition(c) for c in conditions)

            def all_of(event: DomainEvent) -> bool:
                for check in every:  # noqa: SIM110 -- no generator per event on the hot path
                    if not check(event):
                        return False
                return True

            return all_of
        case AnyOf(conditions):
            some = tuple(compile_condition(c) for c in conditions)

            def any_of(event: DomainEvent) -> bool:
                for check in some:  # noqa: SIM110 -- no generator per event on the hot path
                    if check(event):
                        return True
                return False

            return any_of
    assert_never(condition)


def _walk(value: object, names: tuple[str, ...]) -> object:
    for name in names:
        try:
            value = value[name]  # type: ignore[index]
        except (KeyError, TypeError):  # absent, or a string, number, array or null in the way
            return _MISSING
    return value


def _getter(path: tuple[str, ...]) -> Getter:
    root, names = path[0], path[1:]
    if root == "data" and len(names) == 1:  # the common case, a top-level field
        name = names[0]
        return lambda event: event.data.get(name, _MISSING)
    if root == "data":
        return lambda event: _walk(event.data, names)

    def ref_value(event: DomainEvent) -> object:
        ref = event.subject if root == "subject" else event.actor
        if ref is None:
            return _MISSING if names else None
        if not names:
            return {"type": ref.type, "id": ref.id}
        if len(names) == 1 and names[0] in _REF_FIELDS:
            return getattr(ref, names[0])
        return _MISSING

    return ref_value


def _member(values: tuple[FilterValue, ...]) -> Callable[[object], bool]:
    """JSON equality with any of `values` as one hash lookup: `true` is not `1`, `1` is
    `1.0`, and arrays and objects equal nothing."""
    texts = frozenset(v for v in values if isinstance(v, str))
    flags = frozenset(v for v in values if isinstance(v, bool))
    numbers = frozenset(v for v in values if type(v) in _NUMBERS)
    null = None in values

    def member(value: object) -> bool:
        kind = type(value)
        if kind is str:
            return value in texts
        if kind in _NUMBERS:
            return value in numbers
        if kind is bool:
            return value in flags
        return null and value is None

    return member


def _compile_test(test: PathTest) -> Predicate:
    get = _getter(test.path)
    operand = test.operand
    match test.operator:
        case "$exists":
            wanted = bool(operand)
            return lambda event: (get(event) not in (_MISSING, None)) is wanted
        case "$eq" | "$in" | "$neq" | "$nin":
            values = operand if isinstance(operand, tuple) else (operand,)
            member = _member(values)
            if test.operator in ("$eq", "$in"):
                return lambda event: member(get(event))
            return lambda event: not member(get(event))
        case "$gt" | "$gte" | "$lt" | "$lte":
            order = _ORDER[test.operator]
            kinds = _NUMBERS if type(operand) in _NUMBERS else (str,)
            return lambda event: type(value := get(event)) in kinds and order(value, operand)
    assert_never(test.operator)
