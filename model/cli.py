"""`warden model ...`: build tiny offline models and show how a model loads.

warden model make-tiny /tmp/tiny --arch internvl --seed 0
warden model info /tmp/tiny --quant 4bit --json
warden model info OpenGVLab/InternVL3_5-2B-HF      # device, dtype, quant, params, memory
"""

from __future__ import annotations

import json
import resource
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from storage.errors import WardenError

app = typer.Typer(help="VLM backends: tiny offline models, load info.", no_args_is_help=True)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command("make-tiny")
def make_tiny_command(
    out: Path = typer.Argument(..., help="Directory to write the model into."),
    arch: str = typer.Option("internvl", "--arch", help="internvl | qwen2vl | llava | idefics3"),
    seed: int = typer.Option(0, "--seed", help="Seed for the random weights."),
) -> None:
    """Build a tiny random-weight VLM of a real architecture (offline, seconds)."""
    from model.tiny import make_tiny

    try:
        path = make_tiny(out, arch, seed=seed)  # type: ignore[arg-type]
    except WardenError as exc:
        _fail(exc)
    typer.echo(f"tiny {arch} model written to {path}")


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def model_info(
    name: str,
    *,
    quant: str = "auto",
    dtype: str = "auto",
    device: str = "auto",
    adapter: str | None = None,
) -> dict[str, Any]:
    """Load `name` through the regular loader and describe it (plus this process's peak RSS)."""
    from model.loading import load_backend
    from storage.settings import ModelSettings

    settings = ModelSettings(name=name, quant=quant, dtype=dtype, device=device, adapter=adapter)  # type: ignore[arg-type]
    backend = load_backend(settings)
    info = asdict(backend.info)  # type: ignore[attr-defined]
    info["peak_rss_bytes"] = peak_rss_bytes()
    return info


@app.command("info")
def info_command(
    model: str = typer.Argument(..., help='Hub id, local directory or "demo".'),
    quant: str = typer.Option("auto", "--quant", help="auto | 4bit | 8bit | none"),
    dtype: str = typer.Option("auto", "--dtype", help="auto | bfloat16 | float16 | float32"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    adapter: str | None = typer.Option(None, "--adapter", help="PEFT adapter directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Load a model and print device, dtype, quantization, parameters and memory."""
    try:
        info = model_info(model, quant=quant, dtype=dtype, device=device, adapter=adapter)
    except WardenError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    rows = [
        ("model version", info["model_version"]),
        ("path", info["path"]),
        ("architecture", info["architecture"]),
        ("device", info["device"]),
        ("dtype", info["dtype"]),
        ("quantization", info["quant"]),
        ("kept unquantized", ", ".join(info["unquantized_modules"]) or "-"),
        ("adapter", info["adapter"] or "-"),
        ("parameters", f"{info['parameters']:,}"),
        ("weights", f"{info['weight_bytes'] / 2**20:,.1f} MiB"),
        ("peak RSS", f"{info['peak_rss_bytes'] / 2**20:,.1f} MiB"),
        ("load time", f"{info['load_s']:.1f} s"),
    ]
    for key, value in rows:
        typer.echo(f"{key:17s} {value}")


def register(cli: typer.Typer) -> None:
    cli.add_typer(app, name="model")
