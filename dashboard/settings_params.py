"""Settings in a link: which URL parameters mirror which widgets, and how to read them safely.

Pure Python (no Streamlit), so that every rule is unit-tested; dashboard.shared_settings does the
Streamlit part. A link is typed by a teacher or passed around, so anything may be in it: `parse`
accepts a value only when the widget could show it (an option of a select slider, a number inside
the slider's range and on its step, "on"/"off" for a toggle). Anything else is reported in a short
note and the widget gets its default; nothing raises. `encode` writes only the values that differ
from the defaults, so a link stays short and a default setting needs no parameter at all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

from simplecnn.training import LR_SCHEDULES, OPTIMIZERS

MAX_VALUE_CHARS = 40  # longer values are not parsed (and are shown cut in the note)


@dataclass(frozen=True)
class Field:
    """One widget mirrored in the URL: its parameter name, its session-state key, its default and
    what it accepts: `options` (a select slider / selectbox), a `low`..`high` range on a `step` grid
    (a slider or number input; `whole` for whole numbers), `flag` (a toggle), or `many` options (a
    multiselect: a list, written comma-separated in the options' order)."""

    param: str
    key: str
    default: Any
    options: tuple | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    whole: bool = False
    flag: bool = False
    many: bool = False

    def encode(self, value: Any) -> str:
        if self.flag:
            return "on" if value else "off"
        if self.many:
            chosen = set(value)
            return ",".join(str(o) for o in self.options if o in chosen)
        if value is None:
            return "all"
        if self.whole:
            return str(int(value))
        return repr(float(value)) if self.options is None or isinstance(value, float) else str(value)

    def decode(self, text: str) -> Any:
        """The widget value for `text`; ValueError (with a short reason) when the widget cannot show it."""
        text = text.strip()
        if len(text) > MAX_VALUE_CHARS:
            raise ValueError("too long")
        if self.flag:
            lowered = text.lower()
            if lowered in ("on", "true", "1", "yes"):
                return True
            if lowered in ("off", "false", "0", "no"):
                return False
            raise ValueError("use on or off")
        if self.many:
            names = [part.strip() for part in text.split(",")]
            if not text or any(name not in self.options for name in names):
                raise ValueError(f"choose some of {', '.join(map(str, self.options))}")
            return [o for o in self.options if o in names]
        if self.options is not None:
            return self._option(text)
        return self._number(text)

    def _option(self, text: str) -> Any:
        for option in self.options:
            if option is None:
                if text.lower() == "all":
                    return None
            elif isinstance(option, str):
                if text == option:
                    return option
            else:
                try:
                    number = float(text)
                except ValueError:
                    continue
                if math.isfinite(number) and math.isclose(number, option, rel_tol=1e-9, abs_tol=1e-12):
                    return option
        shown = ", ".join(self.encode(o) for o in self.options)
        raise ValueError(f"choose one of {shown}")

    def _number(self, text: str) -> Any:
        try:
            number = float(text)
        except ValueError:
            raise ValueError("not a number") from None
        if not math.isfinite(number):
            raise ValueError("not a number")
        if not self.low <= number <= self.high:
            raise ValueError(f"outside {self.encode(self.low)} to {self.encode(self.high)}")
        if self.whole and number != int(number):
            raise ValueError("not a whole number")
        if self.step:
            steps = (number - self.low) / self.step
            if abs(steps - round(steps)) > 1e-6:
                raise ValueError(f"not a multiple of {self.step:g}")
            number = round(self.low + round(steps) * self.step, 10)
        return int(number) if self.whole else number


# The Train page's settings (pages/train.py, settings_ui); the option lists are the page's own.
LEARNING_RATES = [1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0]
BATCH_SIZES = [8, 16, 32, 64, 128, 256, 512, 1024]
SUBSETS = [500, 1000, 2000, 5000, 10000, 20000, 30000, None]
WEIGHT_DECAYS = [0.0, 1e-5, 1e-4, 1e-3, 1e-2]

TRAIN_FIELDS: tuple[Field, ...] = (
    Field("lr", "train_lr", 1e-3, options=tuple(LEARNING_RATES)),
    Field("optimizer", "train_optimizer", "adam", options=tuple(OPTIMIZERS)),
    Field("batch_norm", "train_batch_norm", True, flag=True),
    Field("dropout1", "train_dropout1", 0.45, low=0.0, high=0.9, step=0.05),
    Field("dropout2", "train_dropout2", 0.35, low=0.0, high=0.9, step=0.05),
    Field("batch_size", "train_batch_size", 64, options=tuple(BATCH_SIZES)),
    Field("epochs", "train_epochs", 2, low=1, high=100, whole=True),
    Field("images", "train_subset", 5000, options=tuple(SUBSETS)),
    Field("val_split", "train_val_split", 0.2, low=0.05, high=0.5, step=0.05),
    Field("seed", "train_seed", 0, low=0, high=2**31 - 1, whole=True),
    Field("weight_decay", "train_wd", 0.0, options=tuple(WEIGHT_DECAYS)),
    Field("schedule", "train_schedule", "constant", options=tuple(LR_SCHEDULES)),
    Field("augment", "train_augment", False, flag=True),
    Field("exact_lr", "train_custom_lr", 0.0, low=0.0, high=100.0),
)


# A page's fields: a fixed tuple, or a function of the widget values chosen so far ({key: value}) for a
# page whose widgets depend on another one (lesson 7: each loss surface has its own learning rate and start).
Spec = Union[Sequence[Field], Callable[[Mapping[str, Any]], Sequence[Field]]]


def fields_of(spec: Spec, values: Mapping[str, Any] | None = None) -> tuple[Field, ...]:
    """The fields of `spec` for these widget values (missing ones at their defaults)."""
    if not callable(spec):
        return tuple(spec)
    fields = tuple(spec({}))
    if values:
        fields = tuple(spec({**{f.key: f.default for f in fields}, **values}))
    return fields


def _first(value: Any) -> str:
    """st.query_params gives the last value of a repeated parameter as str; a plain mapping may give a list."""
    if isinstance(value, (list, tuple)):
        return str(value[-1]) if value else ""
    return str(value)


def parse(query: Mapping[str, Any], fields: Spec) -> tuple[dict[str, Any], list[str]]:
    """({widget key: value} for every field named in `query`, notes about the values refused).

    A refused value maps to the field's default. Parameters that are not fields are ignored (the
    learner's token, the teacher's, anything else). A spec that depends on its own values is read
    twice: first with the defaults (which settles e.g. lesson 7's surface), then for what that chose.
    """
    if callable(fields):
        first, _ = parse(query, fields_of(fields))
        return parse(query, fields_of(fields, first))
    values: dict[str, Any] = {}
    notes: list[str] = []
    for field in fields:
        if field.param not in query:
            continue
        text = _first(query[field.param])
        try:
            values[field.key] = field.decode(text)
        except ValueError as exc:
            values[field.key] = field.default
            shown = text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"
            notes.append(f"{field.param}={shown!r}: {exc}; using the default, {field.encode(field.default)}")
    return values, notes


def encode(values: Mapping[str, Any], fields: Spec) -> dict[str, str]:
    """{parameter: text} for the fields whose value differs from its default (in the fields' order)."""
    fields = fields_of(fields, values)
    out = {}
    for field in fields:
        if field.key not in values:
            continue
        value = values[field.key]
        if field.encode(value) != field.encode(field.default):
            out[field.param] = field.encode(value)
    return out
