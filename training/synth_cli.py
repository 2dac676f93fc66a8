"""`warden synth`: render the SynthMod synthetic moderation set with a labelled JSONL manifest.

warden synth --out data/synth --n 2000 --seed 0
warden synth --out data/leet --n 300 --seed 1 --variants leetspeak
warden synth --out data/ko --n 200 --seed 2 --lang ko --categories scam_fraud,safe --format jpeg

Writes DIR/images/, DIR/manifest.jsonl (readable by `warden ingest DIR/manifest.jsonl`) and
DIR/synth.json (parameters and counts). The same arguments give byte-identical output.
"""

from __future__ import annotations

from pathlib import Path

import typer

from storage.cli import friendly_errors


@friendly_errors
def synth_command(
    out: Path = typer.Option(..., "--out", help="Folder for images/ and manifest.jsonl."),
    n: int = typer.Option(1000, "--n", help="Number of images."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives the same files."),
    variants: list[str] = typer.Option(
        None,
        "--variants",
        help="Variant families to include (repeat or comma-separate): clean, rotation, "
        "perspective, blur, noise, low_contrast, busy_background, leetspeak, homoglyph, "
        "spacing, split_words. Default: all, 60% clean.",
    ),
    categories: list[str] = typer.Option(
        None, "--categories", help="Label sets to include: safe and text categories. Default: all."
    ),
    lang: list[str] = typer.Option(None, "--lang", help="Languages: en, ko, zh. Default: all."),
    size: int = typer.Option(448, "--size", help="Image side in pixels."),
    image_format: str = typer.Option("png", "--format", help="png or jpeg."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing manifest."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Render synthetic moderation images with ground-truth labels."""
    from training.synth import generate

    report = generate(
        out,
        n,
        seed,
        variants=variants or None,
        categories=categories or None,
        langs=lang or None,
        size=size,
        progress=not no_progress,
        image_format=image_format.lower(),  # type: ignore[arg-type]
        overwrite=overwrite,
    )
    typer.echo(f"{report.n} images in {report.seconds:.1f} s -> {report.manifest}")
    typer.echo("labels:   " + ", ".join(f"{k} {v}" for k, v in report.by_label.items()))
    typer.echo("variants: " + ", ".join(f"{k} {v}" for k, v in report.by_variant.items()))
    typer.echo("langs:    " + ", ".join(f"{k} {v}" for k, v in report.by_lang.items()))


def register(cli: typer.Typer) -> None:
    cli.command("synth")(synth_command)
