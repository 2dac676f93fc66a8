"""`warden serve`: run the workbench (login, review, queue, upload, dashboard, models, audit).

Run: warden serve [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import os

import typer


def register(cli: typer.Typer) -> None:
    @cli.command("serve")
    def serve_cmd(
        host: str = typer.Option(None, "--host", help="Bind address (default settings.ui.host)."),
        port: int = typer.Option(None, "--port", help="Port (default settings.ui.port)."),
    ) -> None:
        """Serve the Warden workbench in the browser."""
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        from app.server import serve
        from storage.errors import WardenError
        from storage.settings import get_settings

        settings = get_settings()
        host = host or settings.ui.host
        port = port or settings.ui.port
        typer.echo(f"Warden workbench on http://{host}:{port}/ (Ctrl+C to stop)")
        try:
            serve(settings, host, port)
        except WardenError as exc:  # a short secret key, say: the message says what to do
            typer.secho(f"Error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
