"""Kappa: known values, and agreement from real overlapping annotations."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine

from storage.db import unit_of_work
from storage.policy import Policy
from storage.settings import Settings
from tests.labelstudio.conftest import MakeItems, choices_result
from training.labelstudio.agreement import category_agreement, cohen_kappa, fleiss_kappa
from training.labelstudio.client import LabelStudioClient
from training.labelstudio.project import setup
from training.labelstudio.status import labelstudio_status
from training.labelstudio.sync import pull, push


def test_cohen_and_fleiss_known_values() -> None:
    a = np.array([1, 1, 0, 0, 1, 0, 1, 0, 0, 0])
    b = np.array([1, 0, 0, 0, 1, 0, 1, 1, 0, 0])
    # po = 0.8; pa = 0.4, pb = 0.4; pe = 0.16 + 0.36 = 0.52; kappa = 0.28 / 0.48
    assert cohen_kappa(a, b) == pytest.approx(0.28 / 0.48)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    # Fleiss' own example (1971) rows reduced to a 2-class case computed by hand:
    counts = np.array([[3, 0], [0, 3], [2, 1], [1, 2]])
    # P_i = [1, 1, 1/3, 1/3] -> mean 2/3; p = [0.5, 0.5] -> pe = 0.5; kappa = 1/3
    assert fleiss_kappa(counts) == pytest.approx(1 / 3)


@pytest.mark.labelstudio
def test_overlap_agreement_from_label_studio(
    ls_settings: Settings,
    engine: Engine,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
) -> None:
    state = setup(ls_settings, overlap=2, client=ls_client)
    assert ls_client.get_project(state.project_id)["maximum_annotations"] == 2
    make_items([{"weapons": 0.4}] * 4)
    push(ls_settings, engine, budget=4, image_mode="data", client=ls_client, policy=policy)
    other = ls_client.create_user(f"second-{state.project_id}@warden.test", "second-pass-1")
    first_labels = [["weapons"], ["weapons"], ["safe"], ["safe"]]
    second_labels = [["weapons"], ["safe"], ["safe"], ["safe"]]
    tasks = sorted(ls_client.iter_tasks(state.project_id), key=lambda t: t["id"])
    for t, l1, l2 in zip(tasks, first_labels, second_labels, strict=True):
        for labels, who in ((l1, None), (l2, other)):
            ls_client.create_annotation(
                t["id"],
                choices_result(*labels),
                **({"completed_by": who} if who else {}),
            )
    pull(ls_settings, engine, client=ls_client, policy=policy)
    with unit_of_work(engine) as s:
        kappas = category_agreement(s, project_id=state.project_id)
    # weapons: a = [1,1,0,0], b = [1,0,0,0]: po 0.75, pe 0.5*0.25+0.5*0.75 = 0.5 -> 0.5
    assert kappas == {"weapons": pytest.approx(0.5)}
    assert labelstudio_status(ls_settings, engine, client=ls_client)["agreement"] == kappas
