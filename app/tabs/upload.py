"""Upload tab: images, videos (MP4/MOV/WebM) or a zip, through the same ingestion as
`warden ingest`, with the per-file report; optionally score the new items right away (progress
shown). A zip with a `manifest.jsonl` (or `.csv`) at its top carries posts of several images,
posted text and labels, as a manifest does on the command line.

Gradio caps the upload size (settings.ui.max_upload_bytes); ingestion applies its own limits
(file size, pixels, archive members and ratio) and reports each file it refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from app.context import AppContext
from app.i18n import ui_text
from app.roles import UPLOADERS, current_user, requires
from storage.audit import record_audit
from storage.db import unit_of_work

REPORT_COLUMNS = ["file", "status", "reason", "item", "duplicate of"]
FILE_TYPES = [
    *(".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"),
    *(".mp4", ".m4v", ".mov", ".webm"),
    ".zip",
]


@dataclass(frozen=True)
class UploadTab:
    tab: gr.Tab


def _display_name(path: str, roots: list[str]) -> str:
    for root in roots:
        if path.startswith(root):
            return path[len(root) :].lstrip("/")
    return Path(path).name


def build(ctx: AppContext) -> UploadTab:
    with gr.Tab(ui_text("tabs.upload"), id="upload", elem_id="tab-upload", visible=False) as tab:
        files = gr.File(
            label=ui_text("upload.files"),
            file_count="multiple",
            file_types=FILE_TYPES,
            elem_id="up-files",
        )
        with gr.Row():
            source = gr.Textbox(
                label=ui_text("upload.source"), value="upload", max_lines=1, elem_id="up-source"
            )
            score_now = gr.Checkbox(
                label=ui_text("upload.score_now"), value=False, elem_id="up-score"
            )
            go = gr.Button(ui_text("upload.ingest"), variant="primary", elem_id="up-go")
        summary = gr.Textbox(
            label=ui_text("upload.summary"), interactive=False, elem_id="up-summary"
        )
        report = gr.Dataframe(
            headers=REPORT_COLUMNS,
            datatype=["str"] * len(REPORT_COLUMNS),
            interactive=False,
            elem_id="up-report",
            wrap=True,
        )

    @requires(ctx, *UPLOADERS)
    def ingest(
        paths: list[str] | None,
        src: str,
        score: bool,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ):
        from storage.ingest import ingest_paths

        user = current_user(ctx, request)
        if not paths:
            raise gr.Error("Choose one or more images, videos or a zip first.")
        src = (src or "upload").strip()[:120] or "upload"
        roots = sorted({str(Path(p).parent) + "/" for p in paths}, key=len, reverse=True)
        progress(0, desc="Ingesting")

        def on_progress(done: int, total: int) -> None:
            progress((done, max(total, 1)), desc="Ingesting", unit="files")

        result = ingest_paths(
            ctx.engine,
            ctx.settings,
            [Path(p) for p in paths],
            source=src,
            policy=ctx.policy,
            progress=on_progress,
            actor=user.username,
        )
        with unit_of_work(ctx.engine) as s:
            record_audit(s, user.username, "upload", files=len(paths), **_counts(result))
        rows = [
            [
                _display_name(str(r.path), roots),
                r.status,
                r.reason or "",
                "" if r.item_id is None else str(r.item_id),
                "" if r.duplicate_of is None else str(r.duplicate_of),
            ]
            for r in result.results
        ]
        text = ", ".join(f"{k}: {v}" for k, v in _counts(result).items())
        new_ids = [
            r.item_id
            for r in result.results
            if r.item_id is not None and r.status in ("accepted", "near_duplicate")
        ]
        if score and new_ids:
            text += "; " + _score(ctx, new_ids, progress)
        return text, pd.DataFrame(rows, columns=REPORT_COLUMNS)

    go.click(
        ingest,
        inputs=[files, source, score_now],
        outputs=[summary, report],
        concurrency_limit=2,
        api_visibility="private",
    )
    return UploadTab(tab=tab)


def _counts(result) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in result.results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def _score(ctx: AppContext, item_ids: list[int], progress: gr.Progress) -> str:
    """Score exactly the new items with the model the registry says is live now (the queue's
    order would put older items first); `model.worker.score_with_live` does it the way the
    scoring worker does. An unreadable registry is a clear error, never another model."""
    from model.worker import score_with_live

    progress(0, desc="Loading the model")

    def on_progress(done: int, total: int) -> None:
        progress((done, max(total, 1)), desc="Scoring", unit="items")

    report = score_with_live(ctx.settings, item_ids, policy=ctx.policy, progress=on_progress)
    return f"scored {report.scored} new items with {report.model_version}"
