"""Slurm feature constraints: which nodes a ``--constraint`` expression admits.

``sinfo`` (22.05) cannot filter nodes by features, so blasprof reads each node's active
features and evaluates the node type's ``constraint`` itself. The grammar is the one
``sbatch --constraint`` takes: feature names joined by ``&`` (and) and ``|`` (or), grouped
with parentheses or brackets; counts (``knl*2``) and matching-or brackets only say how a
multi-node job spreads over nodes: for one node ``[a|b]`` is ``a|b``, and ``[a*2&b*2]`` (two
nodes with a and two with b) admits a node with either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from profiler.errors import UsageError

__all__ = ["admits", "parse_constraint"]

_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z0-9_.:=+-]+)(?:\*(?P<count>[0-9]+))?|(?P<op>[&|()\[\],]))"
)

Predicate = Callable[[Collection[str]], bool]


def parse_constraint(expression: str) -> Predicate:
    """A predicate over a node's features; a malformed expression is a ``UsageError``."""
    tokens, counts = _tokens(expression)
    position = 0

    def fail(why: str) -> UsageError:
        return UsageError(f"constraint {expression!r}: {why}")

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def alternatives() -> Predicate:
        terms = [conjunction()]
        while peek() == "|":
            take()
            terms.append(conjunction())
        return terms[0] if len(terms) == 1 else (lambda f: any(t(f) for t in terms))

    def conjunction() -> Predicate:
        terms = [atom()]
        counted = counts[position - 1]
        while peek() in ("&", ","):
            take()
            terms.append(atom())
            counted = counted or counts[position - 1]
        if len(terms) == 1:
            return terms[0]
        if counted:  # a split of the job's nodes between features: each node needs one
            return lambda f: any(t(f) for t in terms)
        return lambda f: all(t(f) for t in terms)

    def atom() -> Predicate:
        token = peek()
        if token is None:
            raise fail("ends where a feature name was expected")
        if token in ("(", "["):
            take()
            inner = alternatives()
            closing = ")" if token == "(" else "]"
            if peek() != closing:
                raise fail(f"a {token!r} is not closed by {closing!r}")
            take()
            return inner
        if token in ("&", "|", ",", ")", "]"):
            raise fail(f"{token!r} where a feature name was expected")
        name = take()
        return lambda features: name in features

    predicate = alternatives()
    if position != len(tokens):
        raise fail(f"unexpected {tokens[position]!r}")
    return predicate


def admits(expression: str | None, features: Collection[str]) -> bool:
    """Whether a node with ``features`` satisfies ``expression`` (None admits every node)."""
    return expression is None or parse_constraint(expression)(features)


def _tokens(expression: str) -> tuple[list[str], list[bool]]:
    """The expression's tokens, and for each whether it is a feature with a count."""
    tokens: list[str] = []
    counts: list[bool] = []
    position = 0
    text = expression.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise UsageError(
                f"constraint {expression!r}: cannot read it from {text[position:][:20]!r}; "
                "use feature names joined by & and |, grouped with ( ) or [ ]"
            )
        tokens.append(match["name"] or match["op"])
        counts.append(match["count"] is not None)
        position = match.end()
    if not tokens:
        raise UsageError(f"constraint {expression!r}: empty")
    return tokens, counts
