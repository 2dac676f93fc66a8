"""Clear errors for an unreachable server or a wrong key; signed image URLs the app accepts."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from storage.errors import WardenError
from storage.settings import Settings
from storage.signing import Signer, load_secret_key
from training.labelstudio.client import LabelStudioClient, LabelStudioDown, connect
from training.labelstudio.server import LabelStudioServer, free_port
from training.labelstudio.signing import signed_image_url, verify_image_signature


def test_unreachable_server_is_a_clear_error(sqlite_settings: Settings) -> None:
    client = LabelStudioClient(f"http://127.0.0.1:{free_port()}", "k" * 40, timeout_s=2)
    with pytest.raises(LabelStudioDown, match="unreachable"):
        client.check()
    with pytest.raises(WardenError, match="API key"):
        connect(sqlite_settings.labelstudio)


@pytest.mark.labelstudio
def test_wrong_api_key_is_a_clear_error(ls_server: LabelStudioServer) -> None:
    client = LabelStudioClient(ls_server.url, "f" * 40)
    with pytest.raises(WardenError, match="rejected the API key"):
        client.check()


def test_signed_url_is_accepted_by_the_app_and_bound_to_item(tmp_path, sqlite_settings) -> None:
    settings = sqlite_settings.model_copy(
        update={"ui": sqlite_settings.ui.model_copy(update={"secret_key": SecretStr("s" * 32)})}
    )
    url = signed_image_url(settings, 7, ttl_s=60, now=1000)
    query = dict(p.split("=") for p in url.split("?", 1)[1].split("&"))
    exp, sig = int(query["exp"]), query["sig"]
    assert url.startswith(settings.labelstudio.public_base_url + "/img/7?")
    assert verify_image_signature(settings, 7, "view", False, exp, sig, now=1000)
    assert not verify_image_signature(settings, 8, "view", False, exp, sig, now=1000)
    assert not verify_image_signature(settings, 7, "view", False, exp, sig, now=1061)
    # The app verifies with storage.signing under the same key: a URL signed for Label Studio
    # is accepted there, and one signed with a different key is not.
    assert Signer(load_secret_key(settings)).check_image(7, "view", False, exp, sig, now=1000)
    assert not Signer(b"k" * 32).check_image(7, "view", False, exp, sig, now=1000)
