"""The ``starq`` command group: global options, the Trio event loop, and one-line error reporting."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import asyncclick as click
import attrs
import trio
from asyncclick.core import ParameterSource, augment_usage_errors
from asyncclick.globals import pop_context, push_context

from starq.worker_kit import StarqError
from starq.worker_kit.backoff import Backoff, RetryPolicy
from starq.worker_kit.protocol import DEFAULT_TIMEOUT, DEFAULT_URL

from .output import Output
from .profiles import PROFILE_ENV, config_path, load_profile

if TYPE_CHECKING:
    from starq.worker_kit import StarqClient

# Commands that run an event loop of their own (``serve`` calls ``trio.run``): they are run after the CLI's loop
# has ended, on the main thread, where their signal handlers work.
OWN_LOOP_COMMANDS = ("serve",)


class RunOutsideLoop(Exception):
    """Carries a command's work out of the CLI's event loop (see ``OWN_LOOP_COMMANDS``)."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__("run outside the event loop")
        self.work = work


class OutputClosed(Exception):
    """The reader of the command's output went away (``starq jobs Q | head -1``)."""


class StarqGroup(click.Group):
    """A group that runs its commands on Trio (the worker kit's event loop)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_anyio_backend", "trio")
        try:
            try:
                return super().__call__(*args, **kwargs)
            finally:
                # What is still buffered would otherwise be written at exit, where a closed pipe is reported
                # with a message of Python's own.
                sys.stdout.flush()
        except RunOutsideLoop as deferred:
            try:
                deferred.work()
            except click.ClickException as exc:
                exc.show()
                sys.exit(exc.exit_code)
            sys.exit(0)
        except (OutputClosed, BrokenPipeError):
            end_as_closed_pipe()

    async def invoke(self, ctx: click.Context) -> Any:
        try:
            return await super().invoke(ctx)
        except BrokenPipeError:
            # Click would turn this into exit status 1; it is not an error of the command.
            raise OutputClosed() from None
        except BaseExceptionGroup as group:
            # A command's nursery (``watch``) wraps what its task raised.
            _, rest = group.split(BrokenPipeError)
            if rest is None:
                raise OutputClosed() from None
            raise


def end_as_closed_pipe() -> NoReturn:
    """Ends the process as git and gh do when their output's reader has gone: at once, silently, by SIGPIPE
    (a shell shows status 141), as any program that does not ignore SIGPIPE ends on its first write to such a
    pipe. (Python ignores SIGPIPE and raises ``BrokenPipeError`` instead.)"""
    try:
        # Nothing more may go to the closed pipe, should anything still try to write on the way out.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    sys.exit(128 + 13)


def run_outside_loop(command: click.Command) -> None:
    """Makes a synchronous command run once the CLI's event loop has ended."""
    work = command.callback
    assert work is not None

    @functools.wraps(work)
    def deferred(*args: Any, **kwargs: Any) -> None:
        ctx = click.get_current_context()

        def in_context() -> None:
            # The command's context stays current and is attached to a usage error it raises, as when it ran
            # inside the loop (the error then shows the command's usage line).
            push_context(ctx)
            try:
                with augment_usage_errors(ctx):
                    work(*args, **kwargs)
            finally:
                pop_context()

        raise RunOutsideLoop(in_context)

    command.callback = deferred


@attrs.define
class Config:
    """The global options, shared by every command through ``ctx.obj``."""

    url: str = DEFAULT_URL
    api_key: str | None = None
    json: bool = False
    timeout: float = DEFAULT_TIMEOUT
    # Where the key came from ("-k/--api-key", "STARQ_API_KEY", "profile 'prod'"; "" for none), for the hint of an
    # authentication error.
    key_source: str = ""

    def client(self) -> StarqClient:
        from starq.worker_kit import StarqClient  # here, not on top: completing a command line needs no HTTP client

        # A CLI call should fail fast when the server is down, after a couple of quick retries.
        return StarqClient(
            self.url, self.api_key, timeout=self.timeout, retry=RetryPolicy(attempts=3, backoff=Backoff(0.2, 1.0))
        )

    def output(self) -> Output:
        return Output(json_mode=self.json)

    def explain(self, exc: StarqError) -> str:
        """The server's detail, and for a refused key (401/403) how to pass one."""
        if exc.status not in AUTH_STATUSES:
            return exc.detail
        if self.key_source:
            how = f"the API key from {self.key_source} was refused: pass another with {KEY_HOW}"
        else:
            how = f"no API key was given: pass one with {KEY_HOW}"
        return f"{exc.detail} ({how})"


# Commands that talk to no Starq server, so no profile is read for them (a broken config file does not stop
# ``starq serve``).
OFFLINE_COMMANDS = ("serve", "completion")
# The answers that mean the key is missing or not good enough, and how a key is given.
AUTH_STATUSES = (401, 403)
KEY_HOW = "-k/--api-key or STARQ_API_KEY (or a profile's api_key, see --profile)"


@click.group(cls=StarqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-u",
    "--url",
    default=None,
    envvar="STARQ_URL",
    help=f"The Starq server (env STARQ_URL)  [default: the profile's url, else {DEFAULT_URL}]",
)
@click.option(
    "-k",
    "--api-key",
    default=None,
    envvar="STARQ_API_KEY",
    help="API key for writes (env STARQ_API_KEY; a dev-mode server accepts 'dev-key').",
)
@click.option(
    "--profile",
    default=None,
    envvar=PROFILE_ENV,
    help=f"Take url and api_key from this profile of ~/.config/starq/config.toml (env {PROFILE_ENV}); "
    "an option or environment variable still wins.",
)
@click.option("--json", "json_mode", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=float,
    envvar="STARQ_TIMEOUT",
    help="Seconds to wait for the server.",
)
@click.version_option(package_name="starq", prog_name="starq")
@click.pass_context
def main(
    ctx: click.Context, url: str | None, api_key: str | None, profile: str | None, json_mode: bool, timeout: float
) -> None:
    """Starq: a self-hosted work queue over Redis Streams.

    Shell completion: eval "$(starq completion bash)" (or zsh, fish; "uv run starq" works too).
    """
    # Precedence: an option, then its environment variable (both arrive here as a value), then the profile,
    # then the default.
    local = ctx.resilient_parsing or ctx.invoked_subcommand in OFFLINE_COMMANDS
    chosen, values = ("", {}) if local else load_profile(profile, config_path())
    key_source = _source(ctx, "api_key", "-k/--api-key", "STARQ_API_KEY") if api_key else ""
    if api_key is None and "api_key" in values:
        api_key, key_source = values["api_key"], f"profile {chosen!r}"
    ctx.obj = Config(
        url=url or values.get("url", DEFAULT_URL),
        api_key=api_key,
        json=json_mode,
        timeout=timeout,
        key_source=key_source,
    )


def _source(ctx: click.Context, name: str, option: str, env: str) -> str:
    return env if ctx.get_parameter_source(name) == ParameterSource.ENVIRONMENT else option


def config(ctx: click.Context) -> Config:
    """The global options of the command being run (set by ``main``, which runs before any command)."""
    found = ctx.find_object(Config)
    assert found is not None
    return found


def explain(exc: StarqError) -> str:
    """``Config.explain`` for the command being run (its context is current in the command's tasks too)."""
    return config(click.get_current_context()).explain(exc)


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` on a command too, so it can come after the command name."""

    def set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            config(ctx).json = True

    return click.option(
        "--json", "json_mode", is_flag=True, expose_value=False, callback=set_json, help="Print machine-readable JSON."
    )(command)


def api_command(group: click.Group, name: str | None = None, **settings: Any) -> Callable[..., Any]:
    """Declares a command that talks to the server.

    The function gets ``(client, out, **params)``; a ``StarqError`` it raises is printed as the server's
    ``detail`` on one line, and the exit status is 1.
    """

    def decorate(fn: Callable[..., Awaitable[None]]) -> click.Command:
        @functools.wraps(fn)
        async def command(**params: Any) -> None:
            settings = config(click.get_current_context())
            out = settings.output()
            async with settings.client() as client:
                try:
                    await fn(client, out, **params)
                except StarqError as exc:
                    out.error(settings.explain(exc))
                    raise click.exceptions.Exit(1) from None
                except BaseExceptionGroup as group:
                    # A command's nursery wraps what its tasks raise; a lone Starq error is still just that.
                    error = _lone_starq_error(group)
                    if error is None:
                        raise
                    out.error(settings.explain(error))
                    raise click.exceptions.Exit(1) from None

        return group.command(name, **settings)(json_option(command))

    return decorate


def _lone_starq_error(group: BaseExceptionGroup) -> StarqError | None:
    leaves = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 and isinstance(leaves[0], StarqError) else None


async def quit_on_sigint(scope: trio.CancelScope) -> None:
    """Ctrl-C ends a command that follows something (``watch``, ``events``) as a normal exit (status 0) rather
    than an abort: run it in the command's nursery, whose scope it cancels."""
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return
