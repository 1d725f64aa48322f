"""Command line. Bare `ptdesk` opens the dashboard; every dashboard action is also a command here.

Commands live in ptdesk/commands/<topic>.py; this module only assembles them and turns
PtdeskErrors into one clear line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import atexit
import gc
import os
import sqlite3
import sys

# paramiko (which docker-py imports for ssh:// engines, also when only the local engine is used)
# imports `invoke` only to run `Match exec` lines of an ~/.ssh/config; ptdesk reads no SSH config
# (ptdesk.core.engine.remote: its own pinned key and identity), and invoke's import is a third of a
# command's start-up (unittest.mock, asyncio, yaml): paramiko is told it is not there.
sys.modules.setdefault("invoke", None)  # type: ignore[arg-type]

# On the way out the interpreter runs one more cyclic-GC pass over every object still alive: for a
# command that is everything its imports made (docker-py, requests, click), walked only to free
# memory the OS takes back anyway — 10-20 ms of a `ptdesk ls` on the 2-core box. Frozen objects
# are left out of that pass (registered first, so it runs after every other exit handler). Nothing
# in ptdesk relies on a finalizer at exit: the store, engine connections and files are closed when
# the command ends, and Python never promised __del__ for what is alive at exit.
atexit.register(gc.freeze)

import click  # noqa: E402

from ptdesk import __version__  # noqa: E402
from ptdesk.commands import COMMAND_SUMMARIES, COMMAND_TOPICS, load_command  # noqa: E402
from ptdesk.config import unknown_env_settings  # noqa: E402
from ptdesk.errors import PtdeskError, from_system_error  # noqa: E402


class PtdeskGroup(click.Group):
    """A click group that reports PtdeskErrors as one line (plus a hint), never a traceback,
    and imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_TOPICS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `ptdesk --help`, from COMMAND_SUMMARIES: no command module imported."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            summary = COMMAND_SUMMARIES.get(name)
            if summary is None:
                command = self.get_command(ctx, name)
                summary = command.get_short_help_str(limit) if command else ""
            rows.append((name, _shortened(summary, limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except PtdeskError as exc:
            report_error(exc)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:
            # `ptdesk ls | head`: the reader left; stop quietly instead of reporting an error.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(1)
        except (OSError, sqlite3.Error) as exc:
            explained = from_system_error(exc)
            if explained is None:  # pragma: no cover - from_system_error covers both families
                raise
            report_error(explained)
            ctx.exit(explained.exit_code)
        except KeyboardInterrupt:
            click.echo("ptdesk: interrupted.", err=True)
            ctx.exit(130)


def _shortened(text: str, limit: int) -> str:
    """`text` cut at a word to fit `limit` columns, as click shortens a command's help."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 3, 1)].rsplit(" ", 1)[0].rstrip(" ,;:") + "..."


def report_error(exc: PtdeskError) -> None:
    click.echo(f"ptdesk: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"  hint: {exc.hint}", err=True)


@click.group(cls=PtdeskGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ptdesk")
@click.pass_context
def main(ctx: click.Context) -> None:
    """ptdesk: the desk for a shared GPU workstation.

    Run without a command to open the live dashboard. Every dashboard action is also a command
    below; add --json to any listing for scripts.
    """
    for name, meant in unknown_env_settings(os.environ):  # a typo must not be ignored silently
        click.echo(f"ptdesk: warning: {name} is not a setting ptdesk reads, so it is ignored"
                   + (f"; did you mean {meant}?" if meant else "."), err=True)
    if ctx.invoked_subcommand is None:
        from ptdesk.commands.dashboard import open_dashboard

        open_dashboard()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
