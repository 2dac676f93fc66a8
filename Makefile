# Warden — set-up in two commands on a fresh machine:
#   make demo   install everything, seed demo content, score it, serve the workbench
#   make test   install everything (incl. Chromium and a Label Studio server), run all tests
# Both create .venv in the repo when missing. Re-running is cheap: each step is idempotent.

SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LS_VERSION := 1.23.2
LS_VENV := $(HOME)/.cache/warden/labelstudio-$(LS_VERSION)
STAMP := $(VENV)/.installed
export ORT_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test venv system-deps labelstudio-server lint bench bench-gpu serve clean

demo: venv
	$(BIN)/warden demo

serve: venv
	$(BIN)/warden serve

test: system-deps venv labelstudio-server
	$(BIN)/ruff check app model training storage tests bench
	mkdir -p test-artifacts
	$(BIN)/python -m pytest -p no:cacheprovider --junitxml=test-artifacts/junit.xml $(PYTEST_ARGS)

venv: $(STAMP)

# torch/torchvision are pinned to the releases known to work together on CPU and CUDA
# (FACTS.md); everything else comes from pyproject.toml.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages: Chromium for the browser tests, CJK fonts for SynthMod, Tesseract's Korean
# model for OCR of Hangul (model/ocr_tesseract.py), a C++ compiler for pdqhash (no wheels).
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! test -d /usr/share/fonts/opentype/noto \
	    || ! ls /usr/share/tesseract-ocr/*/tessdata/kor.traineddata >/dev/null 2>&1 || ! command -v g++ >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver fonts-noto-cjk tesseract-ocr tesseract-ocr-kor g++ >/dev/null; \
	fi

# Label Studio's pins clash with ours: it lives in its own venv under ~/.cache (safe to cache).
labelstudio-server:
	@bash training/labelstudio/install_server.sh $(LS_VERSION)

lint: venv
	$(BIN)/ruff check app model training storage tests bench
	$(BIN)/mypy storage

# Every bench writes bench/results/NAME.json with its provenance; the README's table is then
# regenerated from those files (bench/readme_table.py --check tells when it has drifted).
bench: venv
	for b in queue_latency ingest scoring review_latency labelstudio loop demo_foreign memory reader ocr worker media demo_benign; do $(BIN)/python bench/$$b.py || exit 1; done
	$(BIN)/python bench/review_latency.py --postgres
	$(BIN)/python bench/scoring.py --threads 1 --images-big 1 --skip-memory --results bench/results/scoring_1thread.json
	$(BIN)/python bench/media.py --parts describe --results bench/results/media_describe.json
	for e in swap split; do $(BIN)/python bench/glyph_sets.py --evasion $$e --out /tmp/warden-glyphs-$$e || exit 1; \
	  $(BIN)/python bench/loop.py --corrections /tmp/warden-glyphs-$$e/corrections/manifest.jsonl \
	    --heldout /tmp/warden-glyphs-$$e/heldout_$$e/manifest.jsonl --heldout /tmp/warden-glyphs-$$e/heldout_benign/manifest.jsonl \
	    --max-steps 300 --benign-share 0.3 --work /tmp/warden-loop-$$e \
	    --results bench/results/loop_outside$$( [ $$e = split ] && echo _split ).json || exit 1; done
	$(BIN)/python bench/readme_table.py

# On a CUDA machine (issue 19), one command: the real-shape InternVL3.5-2B (random weights, built
# offline) 4-bit, 8-bit and bf16, images/s and peak GPU memory at batch 1, 8 and 32; RapidOCR on
# onnxruntime's CUDA provider against its CPU one (needs onnxruntime-gpu); the worker end to end
# on 300 items with the VLM on the GPU. Each writes its own *_gpu.json with its provenance.
bench-gpu: venv
	$(BIN)/python bench/scoring.py --memory-only --memory-device cuda --memory-batch 1,8,32 \
	  --results bench/results/scoring_gpu.json
	$(BIN)/python bench/ocr.py --n 20 --n-recall 0 --rapidocr-cuda --results bench/results/ocr_gpu.json
	$(BIN)/python bench/worker.py --n 300 --scale-n 200 --signal-procs 8 --device cuda \
	  --results bench/results/worker_gpu.json

clean:
	rm -rf $(VENV) warden-data test-artifacts
