"""Errors a command reports to its user in one line, whichever package's command raises them."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """A problem with what the user asked for, reported in one line (exit code 1)."""


def one_line(exc: BaseException) -> str:
    """An exception's first line of text (its type's name when it has none): what a user sees."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
