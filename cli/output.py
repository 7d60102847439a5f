"""How the CLI prints: JSON with ``--json``; rich tables and colour on a terminal; tab-separated text when piped."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import asyncclick as click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

STATUS_STYLES = {
    "waiting": "magenta",
    "pending": "cyan",
    "scheduled": "blue",
    "claimed": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "dim",
    "ok": "green",
    "error": "red",
    "deleted": "red",
}


def compact(value: Any, width: int = 60) -> str:
    """One line of JSON, cut to ``width`` characters."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def pretty(value: Any) -> str:
    """JSON over several indented lines (a payload or result in a record); nothing for null."""
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)


def _as_is(key: str, value: Any) -> Any:
    return value


class Output:
    """Where a command prints. Human output goes to stdout; errors and progress go to stderr."""

    def __init__(self, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        # The file is looked up on each write, so tests that swap sys.stdout see the output.
        self.console = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def tty(self) -> bool:
        return self.console.is_terminal

    def json(self, data: Any, *, indent: int | None = 2) -> None:
        click.echo(json.dumps(data, indent=indent, ensure_ascii=False))

    def line(self, text: str, style: str | None = None) -> None:
        """A line for people (nothing in JSON mode)."""
        if self.json_mode:
            return
        if self.tty:
            self.console.print(text, style=style, markup=False)
        else:
            click.echo(text)

    def answer(self, data: Any, text: str) -> None:
        """What a command did: ``data`` with --json, else ``text`` on one line."""
        if self.json_mode:
            self.json(data)
        else:
            self.line(text)

    def show(
        self,
        raw: dict[str, Any],
        *,
        title: str | None = None,
        shown: Callable[[str, Any], Any] = _as_is,
        leave_out: Sequence[str] = (),
    ) -> None:
        """One object of the API: as the server sent it with --json; else a record of its fields but those left
        out, each value as ``shown(key, value)`` renders it."""
        if self.json_mode:
            self.json(raw)
        else:
            self.record([(key, shown(key, value)) for key, value in raw.items() if key not in leave_out], title=title)

    def listing(
        self,
        name: str,
        items: Sequence[Any],
        columns: Sequence[str],
        row: Callable[[Any], Sequence[Any]],
        *,
        empty: str,
        right: Sequence[str] = (),
    ) -> None:
        """A list of the API's objects (each with its ``raw`` fields): ``{name: [raw, ...]}`` with --json; else a
        table of ``row(item)`` for each, or the line ``empty`` when there are none."""
        if self.json_mode:
            self.json({name: [item.raw for item in items]})
        elif not items:
            self.line(empty)
        else:
            self.table(columns, [row(item) for item in items], right=right)

    def note(self, text: str) -> None:
        """A side remark for people, on stderr so pipes stay clean."""
        if self.err.is_terminal:
            self.err.print(text, style="dim", markup=False)
        else:
            click.echo(text, err=True)

    def error(self, text: str) -> None:
        """An error on one line of stderr."""
        one_line = " ".join(str(text).split())
        if self.err.is_terminal:
            self.err.print(f"Error: {one_line}", style="bold red", markup=False)
        else:
            click.echo(f"Error: {one_line}", err=True)

    def status(self, value: str) -> str:
        """A status word, coloured on a terminal."""
        style = STATUS_STYLES.get(value)
        return Marked(f"[{style}]{value}[/]") if style and self.tty else value

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        title: str | None = None,
        right: Sequence[str] = (),
    ) -> None:
        """Rows under a header: aligned and boxed on a terminal, tab-separated when piped."""
        if self.tty:
            table = Table(title=title, header_style="bold", title_justify="left")
            for column in columns:
                table.add_column(column, justify="right" if column in right else "left", overflow="fold")
            for row in rows:
                table.add_row(*(self._cell(v) for v in row))
            self.console.print(table)
        else:
            click.echo("\t".join(columns))
            for row in rows:
                click.echo("\t".join(_plain(v) for v in row))

    def record(self, pairs: Sequence[tuple[str, Any]], *, title: str | None = None) -> None:
        """One object as ``key value`` lines: a two-column table on a terminal, ``key<TAB>value`` when piped."""
        if self.tty:
            table = Table(title=title, show_header=False, title_justify="left", box=None, padding=(0, 2, 0, 0))
            table.add_column(style="bold")
            table.add_column(overflow="fold")
            for key, value in pairs:
                table.add_row(key, self._cell(value))
            self.console.print(table)
        else:
            for key, value in pairs:
                click.echo(f"{key}\t{_plain(value)}")

    def _cell(self, value: Any) -> str:
        return str(value) if isinstance(value, Marked) else escape(_plain(value))


class Marked(str):
    """Text that already carries rich markup (a coloured status)."""


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return compact(value, 10_000)
    return str(value)
