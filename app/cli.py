"""The `warden` command line: a thin Typer layer over typed functions in each package.

Run: warden --help
"""

from __future__ import annotations

import logging
import os
import sys

import typer

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

cli = typer.Typer(
    name="warden",
    help="Warden: moderation analyst workbench.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Each package contributes its own commands; heavy imports stay inside the commands.
    from storage import cli as storage_cli

    storage_cli.register(cli)
    for module in (
        "storage.ingest_cli",
        "model.cli",
        "model.worker_cli",
        "training.synth_cli",
        "training.cli",
        "training.labelstudio.cli",
        "app.serve_cli",
    ):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # that package has no CLI yet
            raise
        mod.register(cli)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("WARDEN_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _register()
    sys.exit(cli())


if __name__ == "__main__":
    main()
