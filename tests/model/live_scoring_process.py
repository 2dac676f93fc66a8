"""A serving process for the live-model tests: scores the item ids it reads from stdin (one
line, space-separated) with the live model through `model.worker.score_with_live`, the
function the upload tab's "score now" calls, and prints one JSON line per request.

Run: python -m tests.model.live_scoring_process   (WARDEN_* settings from the environment)
"""

from __future__ import annotations

import json
import sys

from model.worker import score_with_live
from storage.settings import get_settings


def main() -> None:
    settings = get_settings()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        ids = [int(x) for x in line.split()]
        try:
            report = score_with_live(settings, ids)
            out = {"model_version": report.model_version, "scored": report.scored}
        except Exception as exc:  # noqa: BLE001 - the test reads the error
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
