"""Kubernetes ``$(VAR)`` expansion for command, args and env values.

Follows upstream's ``third_party/forked/golang/expansion``: ``$(NAME)`` is
replaced when NAME is known, left literally otherwise; ``$$`` is an escaped
``$``; a ``$`` followed by anything else (or an unclosed ``$(``) stays as written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "$" or i + 1 >= n:
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            end = text.find(")", i + 2)
            if end == -1:
                out.append(text[i:])
                break
            value = lookup(text[i + 2 : end])
            out.append(value if value is not None else text[i : end + 1])
            i = end + 1
        else:
            out.append(text[i : i + 2])
            i += 2
    return "".join(out)


def expand_all(items: list[str], env: Mapping[str, str]) -> list[str]:
    return [expand(item, env.get) for item in items]
