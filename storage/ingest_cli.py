"""`warden ingest`: add images, folders, .zip archives and CSV/JSONL manifests to the queue.

Run: warden ingest photos/ batch.zip labels.csv --source forum-7 [--json]

One line per file on stdout (accepted / duplicate / near_duplicate / rejected, with the reason);
`--json` prints one JSON object per file and a summary object last. Both summaries count the
items whose hash was too weak to match (`low_quality_hashes`: flat or near-flat images, PDQ
quality below 50). Progress goes to stderr; Pillow's per-file warnings are silenced.
Exit 0 when the run completed (rejections included), 2 when it could not run or was aborted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from storage.cli import friendly_errors, open_db

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from storage.ingest import FileResult, IngestReport
    from storage.settings import Settings


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


@friendly_errors
def ingest_command(
    paths: list[Path] = typer.Argument(..., help="Image files, folders, .zip, .csv or .jsonl."),
    source: str = typer.Option("cli", "--source", help="Source name stored on each item."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file, then a summary."),
) -> None:
    """Ingest images into the review queue (duplicates and hostile files are reported)."""
    from storage.ingest import IngestAborted

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
                f"{s['near_duplicate']} near-duplicate, {s['rejected']} rejected; "
                f"{s['low_quality_hashes']} with a low-quality hash, not matched "
                f"({s['elapsed_s']:.1f} s)"
            )

    _quiet_decoders()
    with open_db() as (settings, engine):
        try:
            report = _ingest(engine, settings, paths, source, as_json, emit)
        except IngestAborted as exc:
            summary(exc.report)  # what was stored before the abort; friendly_errors says why
            raise
    summary(report)


def _quiet_decoders() -> None:
    """Hostile files make Pillow warn and log on every odd header; the per-file reason already
    says what was wrong, so its UserWarnings and error logs would only bury it on stderr."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    logging.getLogger("PIL").setLevel(logging.CRITICAL)


def _ingest(
    engine: Engine,
    settings: Settings,
    paths: list[Path],
    source: str,
    as_json: bool,
    emit: Callable[[FileResult], None],
) -> IngestReport:
    """`ingest_paths` with a progress bar on stderr when it is a terminal."""
    from storage.ingest import ingest_paths

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

            return ingest_paths(
                engine, settings, paths, source=source, progress=progress, on_result=emit
            )
    return ingest_paths(engine, settings, paths, source=source, on_result=emit)


def register(cli: typer.Typer) -> None:
    cli.command("ingest")(ingest_command)
