"""``openigrt config``: print the documented defaults or the effective settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from openigrt.cli.common import common_options, print_json
from openigrt.config import Settings, default_toml


def _as_dict(settings: Settings) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: _masked(getattr(v, f.name)) if f.metadata.get("secret") else conv(getattr(v, f.name))
                    for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(settings)


def _masked(value: Any) -> str:
    """A credential as shown by ``openigrt config``: only whether it is set."""
    return "***" if value else ""


@click.command("config")
@click.option("--defaults", is_flag=True, help="Print every key with its default as a commented TOML file.")
@common_options
def config_command(*, settings: Settings, defaults: bool) -> int:
    """Show the configuration: --defaults for a template, otherwise the effective settings (JSON)."""
    if defaults:
        click.echo(default_toml(), nl=False)
    else:
        print_json(_as_dict(settings))
    return 0


def register(group: click.Group) -> None:
    group.add_command(config_command)
