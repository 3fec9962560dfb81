"""Wildcard patterns as IAM and AWS IoT match them: `*` is any run of characters (also `/`
and `:`), `?` exactly one character; everything else is literal."""

from __future__ import annotations

from functools import lru_cache

WILDCARDS = frozenset("*?")


def has_wildcard(pattern: str) -> bool:
    return any(c in WILDCARDS for c in pattern)


def _fold(text: str, ignore_case: bool) -> str:
    return text.lower() if ignore_case else text


@lru_cache(maxsize=65536)
def _matches(pattern: str, text: str) -> bool:
    # Iterative matcher with one backtrack point (the classic linear-time glob).
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def matches(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    """Whether the literal `text` is one of the strings `pattern` stands for."""
    return _matches(_fold(pattern, ignore_case), _fold(text, ignore_case))


@lru_cache(maxsize=65536)
def _intersects(a: str, b: str) -> bool:
    seen: set[tuple[int, int]] = set()
    stack = [(0, 0)]
    while stack:
        i, j = stack.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        a_star = i < len(a) and a[i] == "*"
        b_star = j < len(b) and b[j] == "*"
        if a_star:
            stack.append((i + 1, j))  # a's star stops here
            if j < len(b):
                stack.append((i, j + 1))  # ... or swallows what b produces next
        if b_star:
            stack.append((i, j + 1))
            if i < len(a):
                stack.append((i + 1, j))
        if not a_star and not b_star and i < len(a) and j < len(b) \
                and (a[i] == b[j] or a[i] == "?" or b[j] == "?"):
            stack.append((i + 1, j + 1))
    return False


def intersects(a: str, b: str, *, ignore_case: bool = False) -> bool:
    """Whether some string matches both patterns (e.g. may a grant on `topic/dt/*` reach a
    topic another device owns, `topic/dt/thing-b/*`?)."""
    return _intersects(_fold(a, ignore_case), _fold(b, ignore_case))


@lru_cache(maxsize=65536)
def _covers(outer: str, inner: str) -> bool:
    # outer's `*` may stand for any run of inner's symbols (wildcards included); outer's `?`
    # for one literal or `?` of inner; literals only for the same literal. Sound, not complete.
    n, m = len(outer), len(inner)
    reach = [False] * (m + 1)
    reach[0] = True
    for i in range(n):
        c = outer[i]
        nxt = [False] * (m + 1)
        if c == "*":
            running = False
            for j in range(m + 1):
                running = running or reach[j]
                nxt[j] = running
        else:
            for j in range(m):
                if reach[j] and inner[j] != "*" and (c == "?" or c == inner[j]):
                    nxt[j + 1] = True
        reach = nxt
    return reach[m]


def covers(outer: str, inner: str, *, ignore_case: bool = False) -> bool:
    """Whether every string `inner` stands for also matches `outer` (conservative: False
    when unsure)."""
    return _covers(_fold(outer, ignore_case), _fold(inner, ignore_case))


def literal_prefix(pattern: str) -> str:
    """The characters before the first wildcard."""
    for index, char in enumerate(pattern):
        if char in WILDCARDS:
            return pattern[:index]
    return pattern


def scopes_nothing(pattern: str) -> bool:
    """A value such as `*`, `**` or `?*` matches everything (or every non-empty string)."""
    return pattern != "" and all(c in WILDCARDS for c in pattern)
