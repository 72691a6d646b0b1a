"""Subcommands imported when they run: ``agentlog --help`` and each command pay only for what they use.

Click's pattern for lazily loaded subcommands, on Typer's group: the top-level group knows
each subcommand by name, module and one-line help (:class:`Lazy`), lists them from that, and
imports a subcommand's module only when it is invoked (or its own help is asked for).
``tests/agentlog/test_cli_startup.py`` holds each one-line help to the command's own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from typer.core import TyperCommand, TyperGroup
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo

MARKUP: Literal["markdown"] = "markdown"


@dataclass(frozen=True)
class Lazy:
    """A subcommand: the attribute ``attr`` of ``module`` (a Typer app, or a command's function)."""

    module: str
    attr: str
    help: str
    """Its one-line help, shown in the top-level help without importing it."""

    def load(self, name: str) -> Any:
        """The subcommand itself (importing its module): a Typer group or command."""
        target: Any = getattr(importlib.import_module(self.module), self.attr)
        if callable(target) and not hasattr(target, "registered_commands"):  # a command's function
            info = CommandInfo(name=name, callback=target)
            return get_command_from_info(info, pretty_exceptions_short=True, rich_markup_mode=MARKUP)
        return get_group_from_info(
            TyperInfo(target, name=name),
            pretty_exceptions_short=True,
            suggest_commands=True,
            rich_markup_mode=MARKUP,
        )


class LazyGroup(TyperGroup):
    """A Typer group whose subcommands are :attr:`lazy` entries, imported on use."""

    lazy: ClassVar[dict[str, Lazy]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, Any] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *self.lazy]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The subcommand for help listings: a stand-in with its one-line help unless it is loaded already."""
        entry = self.lazy.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        return self._loaded.get(cmd_name) or TyperCommand(cmd_name, help=entry.help)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        """The subcommand to run: imported now."""
        name = args[0] if args else ""
        entry = self.lazy.get(name)
        if entry is None:
            return super().resolve_command(ctx, args)
        if name not in self._loaded:
            self._loaded[name] = entry.load(name)
        return name, self._loaded[name], args[1:]

    def load(self, name: str) -> Any:
        """The subcommand ``name``, imported (for tests that compare it with its stand-in)."""
        return self.lazy[name].load(name)
