"""``starq completion SHELL``: print the shell completion script, for ``starq`` and for ``uv run starq``.

asyncclick's scripts complete a command by its own name, so in a uv project, where ``starq`` is not on the PATH
and people type ``uv run starq``, they never run: the shell completes ``uv``. The scripts printed here are
asyncclick's with a part for ``uv`` added: when the words are ``uv run [uv options] starq ...``, it asks that same
command line for the completions of the words from ``starq`` on (so the right environment's ``starq`` answers);
for anything else it hands over to whatever completed ``uv`` before (uv's own completion), so that keeps working
in bash and zsh, and fish merges completions anyway. The classes are registered under the shells' names, so
``_STARQ_COMPLETE=bash_source starq`` prints the same script as ``starq completion bash``.
"""

from __future__ import annotations

import asyncclick as click
from asyncclick.shell_completion import (
    BashComplete,
    FishComplete,
    ShellComplete,
    ZshComplete,
    add_completion_class,
    get_completion_class,
)

from .group import main

SHELLS = ("bash", "zsh", "fish")
PROG_NAME = "starq"
COMPLETE_VAR = "_STARQ_COMPLETE"

# %-formatted with asyncclick's variables (complete_func, complete_var, prog_name); shell code, not Python.
_UV_BASH = """
# `uv run [uv options] %(prog_name)s ...` completes as %(prog_name)s does; anything else as uv did before.
%(complete_func)s_uv() {
    local i
    if [[ ${COMP_WORDS[1]} == run ]]; then
        for ((i = 2; i < COMP_CWORD; i++)); do
            [[ ${COMP_WORDS[i]} == %(prog_name)s ]] || continue
            local IFS=$'\\n'
            local response completion type value
            response=$(env COMP_WORDS="${COMP_WORDS[*]:i}" COMP_CWORD=$((COMP_CWORD - i)) \
%(complete_var)s=bash_complete "${COMP_WORDS[@]:0:i+1}")
            for completion in $response; do
                IFS=',' read type value <<< "$completion"
                if [[ $type == 'dir' ]]; then
                    COMPREPLY=()
                    compopt -o dirnames
                elif [[ $type == 'file' ]]; then
                    COMPREPLY=()
                    compopt -o default
                elif [[ $type == 'plain' ]]; then
                    COMPREPLY+=($value)
                fi
            done
            return 0
        done
    fi
    if [[ -n $%(complete_func)s_uv_previous ]]; then
        "$%(complete_func)s_uv_previous" "$@"
    fi
}

%(complete_func)s_uv_setup() {
    local spec func=
    spec=$(complete -p uv 2>/dev/null)
    [[ $spec =~ -F\\ ([^ ]+) ]] && func=${BASH_REMATCH[1]}
    [[ $func == %(complete_func)s_uv ]] && return 0  # sourced again: already set up
    %(complete_func)s_uv_previous=$func
    if [[ -n $func ]]; then
        eval "${spec/ -F $func / -F %(complete_func)s_uv }"  # uv's options, this function
    else
        complete -o default -F %(complete_func)s_uv uv
    fi
}

%(complete_func)s_uv_setup;
"""

_UV_ZSH = """
# `uv run [uv options] %(prog_name)s ...` completes as %(prog_name)s does; anything else as uv did before.
%(complete_func)s_uv() {
    local i
    if [[ ${words[2]} == run ]]; then
        for ((i = 3; i < CURRENT; i++)); do
            [[ ${words[i]} == %(prog_name)s ]] || continue
            local -a completions
            local -a completions_with_descriptions
            local -a response
            response=("${(@f)$(env COMP_WORDS="${words[i,-1]}" COMP_CWORD=$((CURRENT - i)) \
%(complete_var)s=zsh_complete ${words[1,i]})}")
            for type key descr in ${response}; do
                if [[ "$type" == "plain" ]]; then
                    if [[ "$descr" == "_" ]]; then
                        completions+=("$key")
                    else
                        completions_with_descriptions+=("$key":"$descr")
                    fi
                elif [[ "$type" == "dir" ]]; then
                    _path_files -/
                elif [[ "$type" == "file" ]]; then
                    _path_files -f
                fi
            done
            if [ -n "$completions_with_descriptions" ]; then
                _describe -V unsorted completions_with_descriptions -U
            fi
            if [ -n "$completions" ]; then
                compadd -U -V unsorted -a completions
            fi
            return
        done
    fi
    if [[ -n $%(complete_func)s_uv_previous ]] && (( $+functions[$%(complete_func)s_uv_previous] )); then
        $%(complete_func)s_uv_previous "$@"
    fi
}

if [[ $zsh_eval_context[-1] != loadautofunc && ${_comps[uv]} != %(complete_func)s_uv ]]; then
    %(complete_func)s_uv_previous=${_comps[uv]}
    compdef %(complete_func)s_uv uv
fi
"""

_UV_FISH = """
# `uv run [uv options] %(prog_name)s ...` completes as %(prog_name)s does (fish keeps uv's own completions too).
function %(complete_func)s_uv_run;
    set -l tokens (commandline -cpo);
    test (count $tokens) -ge 3; and test $tokens[2] = run; and contains -- %(prog_name)s $tokens[3..-1];
end;

function %(complete_func)s_uv;
    set -l tokens (commandline -cpo);
    set -l at (math (contains -i -- %(prog_name)s $tokens[3..-1]) + 2);
    set -l words (string escape -- $tokens[$at..-1]) (commandline -ct);
    set -l response (env %(complete_var)s=fish_complete COMP_WORDS="$words" \
COMP_CWORD=(commandline -t) $tokens[1..$at]);

    for completion in $response;
        set -l metadata (string split "," $completion);

        if test $metadata[1] = "dir";
            __fish_complete_directories $metadata[2];
        else if test $metadata[1] = "file";
            __fish_complete_path $metadata[2];
        else if test $metadata[1] = "plain";
            echo $metadata[2];
        end;
    end;
end;

complete --no-files --command uv --condition %(complete_func)s_uv_run --arguments "(%(complete_func)s_uv)";
"""


class BashAndUv(BashComplete):
    source_template = BashComplete.source_template + _UV_BASH


class ZshAndUv(ZshComplete):
    source_template = ZshComplete.source_template + _UV_ZSH


class FishAndUv(FishComplete):
    source_template = FishComplete.source_template + _UV_FISH


for _cls in (BashAndUv, ZshAndUv, FishAndUv):
    add_completion_class(_cls, _cls.name)


def completion_script(shell: str) -> str:
    """The script ``eval "$(starq completion SHELL)"`` loads (also printed by ``_STARQ_COMPLETE=SHELL_source``)."""
    found: type[ShellComplete] | None = get_completion_class(shell)
    if found is None:
        raise click.BadParameter(f"no completion for {shell}", param_hint="SHELL")
    return found(main, {}, PROG_NAME, COMPLETE_VAR).source()


@main.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (it completes both `starq` and `uv run starq`).

    \b
    bash:  eval "$(starq completion bash)"            (in ~/.bashrc)
    zsh:   eval "$(starq completion zsh)"             (in ~/.zshrc)
    fish:  starq completion fish > ~/.config/fish/completions/starq.fish
    In a uv project, "uv run starq completion bash" prints the same script.
    """
    click.echo(completion_script(shell), nl=False)
