"""`warden ingest`: add images, folders, .zip archives and CSV/JSONL manifests to the queue.

Run: warden ingest photos/ batch.zip labels.csv --source forum-7 [--json]

One line per file on stdout (accepted / duplicate / near_duplicate / rejected, with the reason);
`--json` prints one JSON object per file and a summary object last. Progress goes to stderr.
Exit 0 when the run completed (rejections included), 2 when it could not run or was aborted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from storage.errors import WardenError


def _print_human(result: object) -> None:
    from storage.ingest import FileResult

    assert isinstance(result, FileResult)
    detail = []
    if result.item_id is not None:
        detail.append(f"item {result.item_id}")
    if result.reason:
        detail.append(result.reason)
    detail.extend(result.notes)
    if result.labels is not None:
        detail.append(f"labels: {', '.join(result.labels) or 'safe'}")
    # Plain print, never rich markup: file names are hostile and '[...]' would be parsed.
    typer.echo(
        f"{result.status:<14} {result.path}" + (f"  ({'; '.join(detail)})" if detail else "")
    )


def ingest_command(
    paths: list[Path] = typer.Argument(..., help="Image files, folders, .zip, .csv or .jsonl."),
    source: str = typer.Option("cli", "--source", help="Source name stored on each item."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file, then a summary."),
) -> None:
    """Ingest images into the review queue (duplicates and hostile files are reported)."""
    from storage.db import make_engine
    from storage.ingest import FileResult, IngestAborted, IngestReport, ingest_paths
    from storage.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings.database_url, settings.db)

    def emit(result: FileResult) -> None:
        if as_json:
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=True))
        else:
            _print_human(result)

    def summary(report: IngestReport) -> None:
        s = report.summary
        if as_json:
            typer.echo(json.dumps({"summary": s}))
        else:
            typer.echo(
                f"{s['files']} files: {s['accepted']} accepted, {s['duplicate']} duplicate, "
                f"{s['near_duplicate']} near-duplicate, {s['rejected']} rejected "
                f"({s['elapsed_s']:.1f} s)"
            )

    try:
        if not as_json and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            # Lines still go to stdout; only when stdout is the same terminal does rich move
            # them above the bar (as plain Text: no markup or escapes from file names).
            with Progress(
                TextColumn("ingest"),
                BarColumn(),
                MofNCompleteColumn(),
                console=Console(stderr=True),
                transient=True,
                redirect_stdout=sys.stdout.isatty(),
                redirect_stderr=False,
            ) as bar:
                task = bar.add_task("ingest", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=max(total, done))

                report = ingest_paths(
                    engine, settings, paths, source=source, progress=progress, on_result=emit
                )
        else:
            report = ingest_paths(engine, settings, paths, source=source, on_result=emit)
    except IngestAborted as exc:
        summary(exc.report)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except WardenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    summary(report)


def register(cli: typer.Typer) -> None:
    cli.command("ingest")(ingest_command)
