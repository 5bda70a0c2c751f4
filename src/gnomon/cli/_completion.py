"""``gnomon completion SHELL``: the shell completion script (click's own)."""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_command(shell: str) -> None:
    """Print the completion script for SHELL; deployment names complete too.

    \b
    Examples:
      gnomon completion bash > ~/.local/share/bash-completion/completions/gnomon
      gnomon completion zsh > "${fpath[1]}/_gnomon"
      gnomon completion fish > ~/.config/fish/completions/gnomon.fish
    """
    from click.shell_completion import get_completion_class

    from gnomon.cli import main

    completion = get_completion_class(shell)
    if completion is None:  # click knows every shell in SHELLS
        raise click.UsageError(f"no completion for {shell}")
    script = completion(main, {}, "gnomon", "_GNOMON_COMPLETE").source()
    click.echo(script)
