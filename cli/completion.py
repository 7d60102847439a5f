"""``starq completion SHELL``: print the shell completion script (what ``_STARQ_COMPLETE=SHELL_source`` gives)."""

from __future__ import annotations

import asyncclick as click
from asyncclick.shell_completion import get_completion_class

from .group import main

SHELLS = ("bash", "zsh", "fish")


@main.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(starq completion bash)"            (in ~/.bashrc)
    zsh:   eval "$(starq completion zsh)"             (in ~/.zshrc)
    fish:  starq completion fish > ~/.config/fish/completions/starq.fish
    """
    found = get_completion_class(shell)
    if found is None:
        raise click.BadParameter(f"no completion for {shell}", param_hint="SHELL")
    script = found(main, {}, "starq", "_STARQ_COMPLETE")
    click.echo(script.source(), nl=False)
