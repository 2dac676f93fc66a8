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


@cli.callback()
def _root() -> None:
    """Warden: moderation analyst workbench."""


@cli.command("settings")
def show_settings() -> None:
    """Print the effective settings (environment + defaults), secrets masked."""
    import json

    from storage.masking import masked_settings
    from storage.settings import get_settings

    typer.echo(json.dumps(masked_settings(get_settings()), indent=2))


@cli.command("demo")
def demo(
    items: int = typer.Option(60, "--items", help="SynthMod images to seed on first run."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Start the workbench after."),
    host: str | None = typer.Option(None, "--host"),
    port: int | None = typer.Option(None, "--port"),
) -> None:
    """Set up a demo workbench: database, users, SynthMod content, demo-model scores; serve."""
    from storage.errors import WardenError
    from storage.settings import get_settings
    from training.demo_content import prepare_demo

    settings = get_settings()
    try:
        report = prepare_demo(settings, items=items)
    except WardenError as exc:
        typer.secho(f"Error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"Data in {settings.data_dir}; {report.ingested} items ingested, "
        f"{report.scored} scored by {report.model or 'no model'}."
    )
    for note in report.notes:
        typer.secho(f"Note: {note}", fg="yellow")
    typer.echo(f"Log in with one of these (also in {report.credentials_file}):")
    for name, password in report.credentials.items():
        typer.echo(f"  {name:<10} {password}")
    if serve:
        from app.server import serve as serve_app

        host = host or settings.ui.host
        port = port or settings.ui.port
        typer.echo(f"Warden workbench on http://{host}:{port}/ (Ctrl+C to stop)")
        serve_app(settings, host, port)


def _register() -> None:
    # Each package contributes its own commands; heavy imports stay inside the commands.
    for module in (
        "storage.cli",
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
