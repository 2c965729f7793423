"""Errors a command reports to its user in one line, whichever package's command raises them."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """A problem with what the user asked for, reported in one line (exit code 1)."""
