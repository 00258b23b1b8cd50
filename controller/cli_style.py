"""How every ``sdnc`` command group prints its help: arguments by what they take (``KIND``),
never by a Python type (``KIND <str>``), and a usage line in the usual ``sdnc get KIND [ID]``
form rather than typer's ``{KIND}``."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup


class _PlainArgument(TyperArgument):
    """A positional argument shown by its metavar alone."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name if self.nargs == 1 else f"{name}..."


class _PlainHelpGroup(TyperGroup):
    """Hands out its commands with their positional arguments made plain; typer builds the
    click commands afresh on every run, so this is the one place they pass through."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        # Any: typer's contexts and commands are click's, or (since typer vendors click) its copy.
        command = super().get_command(ctx, cmd_name)
        for param in command.params if command else ():
            if type(param) is TyperArgument:
                # Same attributes, other help: swapping the class keeps every parsed setting.
                param.__class__ = _PlainArgument
        return command


def command_group(**settings: Any) -> typer.Typer:
    """A ``typer.Typer`` for one group of ``sdnc`` commands, with the help style above."""
    return typer.Typer(
        cls=_PlainHelpGroup,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        **settings,
    )
