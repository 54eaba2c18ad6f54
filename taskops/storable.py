"""Values the console can store as JSON and send: no NaN or infinity, no NUL, no lone surrogate, at any depth."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

# Deeper than this is refused rather than walked (kombu's JSON parser stops far earlier).
MAX_DEPTH = 500


def _text_problem(text: str) -> str:
    if "\x00" in text:
        return "holds a NUL character (\\u0000), which PostgreSQL does not store in text or JSON"
    for char in text:
        if "\ud800" <= char <= "\udfff":
            return (f"holds a lone surrogate (\\u{ord(char):04x}), which is not text: no database "
                    "stores it and no worker can read it")
    return ""


def _number_problem(number: float | Decimal) -> str:
    finite = number.is_finite() if isinstance(number, Decimal) else math.isfinite(number)
    return "" if finite else (f"is {number}, which is not a JSON number (write it as text, or as a "
                              "finite number)")


def _at(path: str) -> str:
    return f"the value at {path}" if path.startswith("[") else path or "the value"


def value_problem(value: Any, path: str = "") -> str:
    """What makes `value` unstorable, naming where it is ("" when it may be stored and sent).

    Refused anywhere in nested lists, tuples and dicts (keys too): numbers that are not finite
    (NaN, Infinity, 1e999 once parsed), the NUL character and lone UTF-16 surrogates in text.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"{_at(where)} is nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, str):
            problem = _text_problem(node)
        elif isinstance(node, (float, Decimal)):
            problem = _number_problem(node)
        elif isinstance(node, dict):
            problem = ""
            for key, item in node.items():
                key_text = key if isinstance(key, str) else str(key)
                if key_problem := _text_problem(key_text):
                    return f"a key of {_at(where)} {key_problem}"
                stack.append((item, f"{where}[{key_text!r}]", depth + 1))
        elif isinstance(node, (list, tuple)):
            problem = ""
            stack.extend((item, f"{where}[{n}]", depth + 1) for n, item in enumerate(node))
        else:
            problem = ""
        if problem:
            return f"{_at(where)} {problem}"
    return ""


def value_scrubbed(value: Any) -> Any:
    """`value` with every unstorable part replaced by a note saying what it was (for the audit log)."""
    if isinstance(value, str):
        return value if not _text_problem(value) else "(not recorded: not storable text)"
    if isinstance(value, (float, Decimal)):
        return value if not _number_problem(value) else f"(not recorded: {value})"
    if isinstance(value, dict):
        return {value_scrubbed(key) if isinstance(key, str) else key: value_scrubbed(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [value_scrubbed(item) for item in value]
    return value
