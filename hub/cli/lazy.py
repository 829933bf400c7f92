"""Command groups whose module is imported only when the command is chosen.

`spottypotty --help`, `sessions` and `invoke` must not pay for importing `hub.cli.ble`,
`hub.cli.sensors`, `hub.cli.sync`, … and what those import. The top-level parser lists
such a group by name and one-line help only, and builds its real parser from the module's
`add_parser(subparsers, common)` when argparse dispatches to it — so the group's own
options, subcommands, `--help` and errors are exactly what the module defines.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

# `add_subparsers(action=...)` is argparse's documented hook for this; the class it must
# extend is named private but has kept its shape since Python 3.2.
if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]  # noqa: SLF001
else:  # not subscriptable at run time
    _SubParsers = argparse._SubParsersAction  # noqa: SLF001


class LazySubcommands(_SubParsers):
    """Subparsers where a command group may be named by its module instead of built.

    Until the group is chosen, `choices[name]` is an empty placeholder parser: it holds
    the name (for validation and `--help`), not the group's arguments.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, tuple[str, argparse.ArgumentParser]] = {}

    def add_module(
        self, name: str, module: str, common: argparse.ArgumentParser, *, summary: str
    ) -> None:
        """List `name` with `summary`; `module.add_parser(subparsers, common)` builds it later."""
        self.add_parser(name, help=summary)
        self._pending[name] = (module, common)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if values:
            name = values[0]
            if name in self._pending:
                self.choices[name] = self._build(name)
        super().__call__(parser, namespace, values, option_string)

    def _build(self, name: str) -> argparse.ArgumentParser:
        module, common = self._pending.pop(name)
        # The module registers on subparsers of its own (ours already hold the placeholder
        # and its help line) with our prefix, so its usage reads `spottypotty ble …` as before.
        scratch = argparse.ArgumentParser(add_help=False).add_subparsers(prog=self._prog_prefix)
        importlib.import_module(module).add_parser(scratch, common)
        return scratch.choices[name]


def add_subcommands(
    parser: argparse.ArgumentParser, *, metavar: str, required: bool
) -> LazySubcommands:
    subcommands = parser.add_subparsers(action=LazySubcommands, metavar=metavar, required=required)
    if not isinstance(subcommands, LazySubcommands):  # argparse ignored `action`
        raise TypeError(f"expected LazySubcommands, got {type(subcommands).__name__}")
    return subcommands
