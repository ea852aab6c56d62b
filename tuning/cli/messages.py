"""What the commands print for a user's mistake, an export that cannot be made and Ctrl-C, and the exit code
that goes with each."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from tuning.errors import ExportFailed, StudyError


def user_error(console: Any, exc: StudyError) -> int:
    """Print ``exc``'s message, no traceback, its paths whole on any terminal width; exit code 2."""
    console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return 2


def export_failed(console: Any, exc: ExportFailed) -> int:
    """The study ran, but nothing it made could be exported (every candidate diverged): exit code 1."""
    console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return 1


def interrupted(console: Any) -> int:
    """Say the command was interrupted; exit code 130."""
    console.print("[bold red]interrupted[/]")
    return 130
