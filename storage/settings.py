"""Typed configuration for every Warden component, read from the environment.

One `Settings` object (env prefix `WARDEN_`, nested sections joined by `__`, e.g.
`WARDEN_DB__URL`, `WARDEN_MODEL__QUANT`) is built by `get_settings()`, never at import time.
Each component receives only its own section.

Run: warden settings  (prints the effective settings, secrets masked)
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS_DIR = REPO_ROOT / "assets"
DEFAULT_POLICY = ASSETS_DIR / "policy" / "default.yaml"


class DBSettings(BaseModel):
    # None means "SQLite under data_dir"; resolved by Settings.database_url.
    url: str | None = None
    echo: bool = False
    pool_size: int = 10
    # SQLite busy timeout: how long a writer waits for the lock before failing.
    sqlite_busy_timeout_s: float = 30.0


class LimitSettings(BaseModel):
    max_file_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 64_000_000
    max_archive_members: int = 10_000
    max_archive_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_archive_ratio: float = 100.0
    max_manifest_rows: int = 1_000_000
    max_text_chars: int = 20_000
    near_duplicate_distance: int = 6
    hashbank_priority_boost: int = 100
    # A post (manifest row with `images`) may carry at most this many images.
    max_images_per_post: int = Field(default=10, ge=1)
    # Videos (MP4/MOV/WebM, storage.video): checked in the header and again while decoding.
    max_video_seconds: float = Field(default=600.0, gt=0)
    max_video_pixels: int = Field(default=3840 * 2160, ge=1)  # per frame
    max_video_frames: int = Field(default=36_000, ge=1)
    max_video_decoded_bytes: int = Field(default=8 * 1024**3, ge=1)
    # Frames kept as the item's media: half uniform over time, half at scene changes.
    video_sample_frames: int = Field(default=8, ge=1, le=64)


class QueueSettings(BaseModel):
    lease_s: int = 600
    score_lease_s: int = 900


class ModelSettings(BaseModel):
    # Hub id or local directory. "demo" means the checkpoint shipped in assets/.
    name: str = "demo"
    quant: Literal["auto", "4bit", "8bit", "none"] = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device: str = "auto"
    adapter: str | None = None
    batch_size: int = 8
    # Tokens a JSON verdict may generate; None: 160, raised for a model asked for boxes to fit
    # one box per category per image (model.grounding.verdict_max_new_tokens). A number set
    # here is used as it is.
    max_new_tokens: int | None = Field(default=None, ge=1)
    ocr: bool = True
    # OCR engine (WARDEN_MODEL__OCR_ENGINE): "auto" = RapidOCR, plus Tesseract's Korean model
    # when RapidOCR's lines look non-Latin or unsure (RapidOCR alone if Tesseract is missing).
    ocr_engine: Literal["auto", "rapidocr", "tesseract"] = "auto"
    # The OCR text goes into the prompt as a hint (WARDEN_MODEL__OCR_HINT); off for models
    # that read text themselves. OCR still runs (with `ocr`) for the card and search.
    ocr_hint: bool = True
    nsfw: bool = True
    # A detailed description of each image or frame (objects, people, actions, visible text,
    # setting), written by the model and shown at the top of the review card
    # (WARDEN_MODEL__DESCRIBE; model.describe). It costs a generation per medium, so it is
    # opt-in per deployment; a model that cannot see images (the demo) never writes one.
    describe: bool = False
    describe_max_new_tokens: int = Field(default=256, ge=1, le=4096)
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_model: str | None = None


class WorkerSettings(BaseModel):
    # `warden score` overlaps the signals (decode, OCR, NSFW) with the VLM (model.pipeline).
    pipeline: bool = True
    # Signal processes (WARDEN_WORKER__SIGNAL_PROCS); 0 = one per core but one.
    signal_procs: int = Field(default=0, ge=0)
    # Batches claimed and not yet recorded, at most (backpressure).
    max_in_flight: int = Field(default=2, ge=1)
    # OCR on "cuda" (onnxruntime's CUDA provider), "cpu", or "auto" (cuda when both
    # onnxruntime and torch see it).
    ocr_device: Literal["auto", "cpu", "cuda"] = "auto"
    # Items of several media also get each medium scored alone (model.evidence), so the
    # prediction says which image or frame drove which category (WARDEN_WORKER__MEDIA_EVIDENCE).
    media_evidence: bool = True
    # OCR lines that drove a flagged verdict, found by scoring the item again with each line
    # left out (model.regions): one extra prompt per OCR line of each flagged item, so opt-in
    # (WARDEN_WORKER__REGION_EVIDENCE). Lines the model's reader rewrote are marked regardless.
    region_evidence: bool = False


class UISettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 7860
    # HMAC key for session cookies and signed image URLs; generated into data_dir if unset.
    secret_key: SecretStr | None = None
    session_ttl_s: int = 12 * 3600
    image_url_ttl_s: int = 900
    blur_nsfw_threshold: float = 0.4
    max_upload_bytes: int = 200 * 1024 * 1024
    # Per username (as normalised) and address; then per address over all usernames.
    login_max_failures: int = 5
    login_lockout_s: int = 300
    login_ip_max_failures: int = 30
    secure_cookies: bool = False
    concurrency_limit: int = 16
    # Open items older than this many hours show in the Queue's "Older than SLA" view.
    review_sla_h: float = Field(default=24.0, gt=0)
    # Review cards open with the model's flags already checked (WARDEN_UI__PREFILL_MODEL_FLAGS);
    # off shows an empty card, against anchoring. The accept key (A) works either way.
    prefill_model_flags: bool = True


class LabelStudioSettings(BaseModel):
    url: str = "http://127.0.0.1:8080"
    api_key: SecretStr | None = None
    project_id: int | None = None
    # Where Label Studio fetches images from: Warden's own signed-URL route.
    public_base_url: str = "http://127.0.0.1:7860"
    webhook_secret: SecretStr | None = None
    overlap: int = 1
    timeout_s: float = 10.0


class TrainSettings(BaseModel):
    runs_dir: Path | None = None
    datasets_dir: Path | None = None
    seed: int = 0
    replay_ratio: float = 0.3
    promote_tolerance: float = 0.03
    retention_tolerance: float = 0.01


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WARDEN_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default=Path("warden-data"))
    blob_dir: Path | None = None
    policy_path: Path = DEFAULT_POLICY
    # Convenience alias documented in the README: WARDEN_DATABASE_URL.
    database_url_override: str | None = Field(default=None, alias="WARDEN_DATABASE_URL")

    db: DBSettings = DBSettings()
    limits: LimitSettings = LimitSettings()
    queue: QueueSettings = QueueSettings()
    model: ModelSettings = ModelSettings()
    worker: WorkerSettings = WorkerSettings()
    ui: UISettings = UISettings()
    labelstudio: LabelStudioSettings = LabelStudioSettings()
    train: TrainSettings = TrainSettings()

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @property
    def database_url(self) -> str:
        url = self.database_url_override or self.db.url
        if url:
            return url
        return f"sqlite:///{self.data_dir / 'warden.db'}"

    @property
    def blobs_path(self) -> Path:
        return (self.blob_dir or self.data_dir / "blobs").expanduser().resolve()

    @property
    def runs_path(self) -> Path:
        return (self.train.runs_dir or self.data_dir / "runs").expanduser().resolve()

    @property
    def datasets_path(self) -> Path:
        return (self.train.datasets_dir or self.data_dir / "datasets").expanduser().resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build `Settings(...)` directly instead."""
    return Settings()
