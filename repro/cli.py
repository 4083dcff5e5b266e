"""The `repro` command line: a thin Click layer; each subcommand lives in `repro/commands/<name>.py`.

Every module in `repro.commands` that defines a module-level ``command`` (a click.Command) is
registered. Modules import heavy libraries (torch, pyserini) inside their functions so that
`repro --help` stays fast.
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import pkgutil
import signal
import sys
import traceback

import click

from repro import __version__
from repro.errors import ReproError
from repro import commands as _commands_pkg


class _Group(click.Group):
    """Click group that turns user errors into one line, and keeps tracebacks behind -v."""

    def invoke(self, ctx: click.Context):  # noqa: D401 - click API
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("error: interrupted (Ctrl-C); completed outputs were kept, partial ones removed", err=True)
            sys.exit(130)
        except MemoryError:
            raise ReproError("out of memory; use a smaller --batch-size or more memory") from None
        except Exception as err:  # a bug or an unforeseen environment problem (main() prints the traceback on -v)
            raise click.ClickException(
                f"internal error: {type(err).__name__}: {err} (run `repro -v ...` for the traceback)"
            ) from err


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="repro")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logging.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Train, encode, index, search and evaluate SPLADE, side by side with published numbers.

    \b
    Typical pipeline:
      repro encode corpus.tsv --model M --output coll/
      repro index coll/ --output idx/
      repro search idx/ --topics topics.tsv --model M --output runs/run.trec
      repro evaluate runs/*.trec --qrels qrels.txt
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    if verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG)


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(_commands_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{_commands_pkg.__name__}.{info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            cli.add_command(command)


_register()


def configure_process(verbose: bool) -> None:
    """Process-wide settings, set here at the edge and nowhere in the library.

    - tokenizers' own thread pool would fight torch's for the cores (and warns after a fork);
    - transformers' per-load warnings and progress bars are noise for a command-line user (``-v``
      keeps them), applied lazily when transformers is imported, never importing it here;
    - ``kill -USR1 <pid>`` prints every thread's stack to stderr and lets the run go on, so a run
      that seems stuck (a rank of a distributed job, a slow engine call) says where it is.
    """
    stderr = sys.__stderr__  # the process's own fd 2, even while a caller has sys.stderr swapped for a buffer
    if hasattr(signal, "SIGUSR1") and stderr is not None:  # no SIGUSR1 on Windows; no stderr under pythonw
        faulthandler.register(signal.SIGUSR1, file=stderr, all_threads=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main() -> None:
    """Entry point; ClickException (ReproError included) prints one line and exits non-zero."""
    verbose = "-v" in sys.argv[1:2] or "--verbose" in sys.argv[1:2]
    configure_process(verbose)
    try:
        cli.main(standalone_mode=False, prog_name="repro")
    except click.exceptions.Exit as ex:
        sys.exit(ex.exit_code)
    except click.ClickException as err:
        if verbose:  # the whole chain: where the error was raised, and what caused it
            traceback.print_exception(err)
        click.echo(f"error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("error: interrupted (Ctrl-C); completed outputs were kept, partial ones removed", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("error: interrupted (Ctrl-C); completed outputs were kept, partial ones removed", err=True)
        sys.exit(130)
