"""What the console hides of task arguments (keys from TASKOPS_MASK_KEYS, what the sender masked), as pure functions."""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from celery.utils.saferepr import saferepr
from kombu.utils.json import dumps as kombu_dumps

from taskops.conf import config

# What a hidden value is shown as, and the placeholder that stands for it in the edit form.
MASK = "••••"
# The two parts of a call a sender can mask with its own repr (argsrepr / kwargsrepr).
PARTS = ("args", "kwargs")

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def normalised(key: object) -> str:
    """A key as masking compares it: compatibility-folded, lower case, letters and digits only."""
    text = str(key)
    return _NOT_ALNUM.sub("", (text if text.isascii() else unicodedata.normalize("NFKC", text)).lower())


@lru_cache(maxsize=16)
def _fragments(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f for f in dict.fromkeys(normalised(k) for k in keys) if f)


def mask_fragments(keys: Iterable[str] | None = None) -> tuple[str, ...]:
    """The normalised key names to mask: `keys`, else TASKOPS_MASK_KEYS."""
    return _fragments(tuple(config.mask_keys if keys is None else keys))


def _masked(key: object, fragments: tuple[str, ...]) -> bool:
    name = normalised(key)
    return any(fragment in name for fragment in fragments)


def key_masked(key: object, keys: Iterable[str] | None = None) -> bool:
    """True when values under `key` are hidden: a masked name is part of it (`DB_Password`)."""
    return _masked(key, mask_fragments(keys))


def _typed(node: object) -> bool:
    """A value kombu's JSON keeps typed ({"__type__": "uuid", "__value__": ...}): one value."""
    return isinstance(node, dict) and set(node) == {"__type__", "__value__"}


def value_mask(value: Any, keys: Iterable[str] | None = None) -> Any:
    """A copy of `value` with every value under a masked key replaced by MASK.

    Walks nested dicts, lists and tuples; a masked key hides its whole value (a dict, a list, a
    kombu-typed value). Too deep to walk is hidden whole.
    """
    fragments = mask_fragments(keys)

    def walk(node: Any) -> Any:
        if isinstance(node, dict) and not _typed(node):
            return {k: MASK if _masked(k, fragments) else walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, tuple):
            return tuple(walk(item) for item in node)
        return node

    if not fragments:
        return value
    try:
        return walk(value)
    except RecursionError:
        return MASK


# A Python repr as tokens: string literals (a cut repr may end inside one), names, brackets.
_TOKEN = re.compile(r"""
    (?P<str>[rRbBuU]{0,2}(?:'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z)))
  | (?P<name>[^\W\d]\w*)
  | (?P<space>\s+)
  | (?P<open>[\[({])
  | (?P<close>[\])}])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


def _literal_text(token: str) -> str:
    try:
        value = ast.literal_eval(token)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return token.lstrip("rRbBuU")[1:]  # a cut literal: its text as written
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


_PAIRS = {"(": ")", "[": "]", "{": "}"}
_CLOSED_STR = re.compile(r"""[rRbBuU]{0,2}(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""", re.DOTALL)


def _well_formed(tokens: list[tuple[str, str]]) -> bool:
    """Strings closed, brackets paired, no two strings or names side by side: how a repr read
    with the wrong ending of a string (a backslash before a quote, unescaped by Celery) shows."""
    opened: list[str] = []
    previous = ""
    for kind, token in tokens:
        if kind == "str" and not _CLOSED_STR.fullmatch(token):
            return False
        if kind in ("str", "name") and previous in ("str", "name") or token == "\\":
            return False
        if kind == "open":
            opened.append(_PAIRS[token])
        elif kind == "close" and (not opened or opened.pop() != token):
            return False
        previous = kind
    return not opened


def _keys_mask(text: str, fragments: tuple[str, ...]) -> str | None:
    """Values under masked keys hidden; None when the text cannot be read for sure."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text)]
    if ("\\'" in text or '\\"' in text) and not _well_formed(tokens):
        return None
    out: list[str] = []
    i, end = 0, len(tokens)
    while i < end:
        kind, token = tokens[i]
        out.append(token)
        i += 1
        if kind not in ("str", "name"):
            continue
        j = i
        while j < end and tokens[j][0] == "space":
            j += 1
        if j == end or tokens[j][1] != (":" if kind == "str" else "="):
            continue
        if kind == "name" and j + 1 < end and tokens[j + 1][1] == "=":
            continue  # a comparison, not a keyword
        if not _masked(_literal_text(token) if kind == "str" else token, fragments):
            continue
        j += 1
        while j < end and tokens[j][0] == "space":
            j += 1
        out.extend(t for _, t in tokens[i:j])
        i, depth = j, 0
        while i < end:  # the value: up to the next comma or closing bracket at its level
            kind, token = tokens[i]
            if depth == 0 and (kind == "close" or token == ","):
                break
            if depth == 0 and token == ":":
                return None  # a second key in one value: the strings were read wrongly
            depth += {"open": 1, "close": -1}.get(kind, 0)
            i += 1
        if i == end:
            return None  # cut short, or a string read wrongly: where the value ends is unknown
        if i > j:
            out.append(repr(MASK))
    return "".join(out)


# Anything that may be a key and its separator, read loosely: a quoted text (a quote after a
# backslash may be inside it, escaped or not) before a colon, or a name before "=".
_KEY_LIKE = re.compile(r"""
    '(?P<single>(?:[^']|(?<=\\)')*?)'\s*:\s*
  | "(?P<double>(?:[^"]|(?<=\\)")*?)"\s*:\s*
  | (?<![\w'"\\])(?P<name>[^\W\d]\w*)\s*=(?!=)\s*
""", re.VERBOSE | re.DOTALL)


def _key_left_unmasked(text: str, fragments: tuple[str, ...]) -> bool:
    hidden = repr(MASK)
    return any(
        _masked(found.group("single") or found.group("double") or found.group("name") or "",
                fragments) and not text.startswith(hidden, found.end())
        for found in _KEY_LIKE.finditer(text)
    )


def repr_mask(text: str | None, keys: Iterable[str] | None = None) -> str | None:
    """A Python repr (Celery's argsrepr/kwargsrepr, a stored task_args) with masked values hidden.

    `'password': 'x'` in a dict and `password='x'` in a call both become `'••••'`, whatever the
    value (a nested dict too); everything else is kept as written, and for a repr of a value `v`
    the result is `saferepr(value_mask(v))`. Celery does not escape backslashes, so a backslash
    before a quote can make a repr ambiguous: when a masked value seems to run to the end of the
    text (or the repr was cut inside it), or a loose reading still finds a masked key with a
    visible value, the whole repr is hidden.
    """
    fragments = mask_fragments(keys)
    if not text or not fragments:
        return text
    if "\\" not in text and not _masked(text, fragments):
        return text  # the common case: no masked name anywhere in the text
    masked = _keys_mask(text, fragments)
    if masked is None or _key_left_unmasked(masked, fragments):
        return repr(MASK)
    return masked


# Free text: a quoted or bare name, then ":" or "=", then its value: a quoted string (kept
# quoted), else everything up to the end of the line or a delimiter.
_TEXT_KEY = re.compile(r"""('[^'\n]{1,100}'|"[^"\n]{1,100}"|[^\W\d][\w-]{0,100})\s*(?::|=(?!=))[ \t]*""")
_TEXT_VALUE = re.compile(r"""'(?:[^'\\\n]|\\.)*'?|"(?:[^"\\\n]|\\.)*"?|[^,;)\]}\n'"]+""")


def text_mask(text: str | None, keys: Iterable[str] | None = None) -> str | None:
    """Free text (a traceback, an error message quoting the arguments) with the value after a
    masked name and a colon or an equals sign hidden: `'api_key': 'x'`, `password=x`,
    `Authorization: Bearer x`. A reading of text, not of data: it may hide a little more."""
    fragments = mask_fragments(keys)
    if not text or not fragments or not _masked(text, fragments):
        return text
    out, position = [], 0
    for found in _TEXT_KEY.finditer(text):
        if found.start() < position or not _masked(found.group(1).strip("'\""), fragments):
            continue
        value = _TEXT_VALUE.match(text, found.end())
        if value is None or not value.group().strip():
            continue
        quote = value.group()[0] if value.group()[0] in "'\"" else ""
        out += [text[position:found.end()], quote, MASK, quote]
        position = value.end()
    return "".join(out) + text[position:]


def stored_repr(value: str | None, *, masked: bool = True) -> str | None:
    """The argsrepr/kwargsrepr of a run as django-celery-results stores it (JSON text), or None.

    Masked by key unless `masked` is False (a reveal). Text that is not JSON is taken as the repr.
    """
    if not value:
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        decoded = value
    if not isinstance(decoded, str):
        decoded = repr(decoded)
    return repr_mask(decoded) if masked else decoded


def stored_repr_mask(value: str | None) -> str | None:
    """A stored task_args/task_kwargs (JSON text) with masked values hidden, in the same encoding.

    Unchanged text is returned as it came; text that is not JSON is masked as a repr.
    """
    if not value:
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return repr_mask(value)
    if isinstance(decoded, str):
        masked = repr_mask(decoded)
        return value if masked == decoded else json.dumps(masked)
    masked = value_mask(decoded)
    return value if masked == decoded else kombu_dumps(masked)


def sender_masked(shown: str | None, values: Any, *, maxsize: int = 1024, maxlevels: int = 3,
                  keys: Iterable[str] | None = None) -> bool:
    """True when `shown`, the repr a sender gave for `values` (argsrepr/kwargsrepr), hides more
    than masking by key does: it is not Celery's repr of them, masked by key or not.

    A list is also compared as the tuple the sender may have passed. False when there is no repr.
    """
    if shown is None:
        return False
    forms = [values, value_mask(values, keys)]
    forms += [tuple(form) for form in forms if isinstance(form, list)]
    return all(shown != saferepr(form, maxsize, maxlevels=maxlevels) for form in forms)


def arguments_shown(args: list, kwargs: dict, sender_masked_parts: Iterable[str] = (),
                    keys: Iterable[str] | None = None) -> tuple[list, dict]:
    """A call's args and kwargs as the console shows them: in a part the sender masked every
    value is MASK (its keyword names stay), elsewhere values under masked keys are."""
    hidden = set(sender_masked_parts)
    shown_args = [MASK] * len(args) if "args" in hidden else value_mask(list(args), keys)
    shown_kwargs = ({key: MASK for key in kwargs} if "kwargs" in hidden
                    else value_mask(dict(kwargs), keys))
    return shown_args, shown_kwargs


class PlaceholderWithoutValue(ValueError):
    """A MASK placeholder where the captured call has no value to put in its place."""

    def __init__(self, where: str) -> None:
        super().__init__(f"{MASK} at {where} stands for a hidden value, but the captured call has "
                         "no value there: type the value instead")
        self.where = where


_MISSING = object()


def placeholders_fill(edited: Any, captured: Any, where: str = "") -> Any:
    """`edited` with each MASK placeholder replaced by the value at the same place in `captured`.

    So a value can be fixed without the hidden ones being seen: a placeholder stands for what
    the captured call holds at its place (same list index, same key), nowhere else. Raises
    PlaceholderWithoutValue when the captured call has nothing there.
    """
    def walk(node: Any, original: Any, path: str) -> Any:
        if node == MASK and isinstance(node, str):
            if original is _MISSING:
                raise PlaceholderWithoutValue(path or "the top level")
            return original
        if isinstance(node, dict) and not _typed(node):
            inner = original if isinstance(original, dict) else {}
            return {key: walk(value, inner.get(key, _MISSING), f"{path}[{json.dumps(key)}]")
                    for key, value in node.items()}
        if isinstance(node, list):
            inner = original if isinstance(original, (list, tuple)) else ()
            return [walk(item, inner[index] if index < len(inner) else _MISSING, f"{path}[{index}]")
                    for index, item in enumerate(node)]
        return node

    try:
        return walk(edited, captured, where)
    except RecursionError as exc:
        raise PlaceholderWithoutValue(where or "the top level") from exc
