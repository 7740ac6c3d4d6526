"""What the dashboard's data says of chains in each state: the same words as every surface,
the funnel per repository, retrying jobs and what each delivery's jobs are doing now."""

from __future__ import annotations

from typing import Any

from flask import Flask

from tests.dashboard.conftest import TOKEN
from tests.states import NO_ENVIRONMENT, NO_STAGE, REPOSITORY, Arranged


def overview(app: Flask) -> dict[str, Any]:
    answer = app.test_client().get("/api/overview", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    data: dict[str, Any] = answer.get_json()
    return data


def test_each_chain_shows_its_state(states_app: Flask, states: Arranged) -> None:
    chains = {c["id"]: (c["state"], c["state_text"]) for c in overview(states_app)["chains"]}
    assert chains[states.accepted] == ("accepted", "accepted (score 0.90)")
    assert chains[states.not_eligible] == ("not_eligible", f"not eligible: {NO_STAGE}")
    assert chains[states.no_environment] == ("not_eligible", f"not eligible: {NO_ENVIRONMENT}")
    assert chains[states.unready] == (
        "not_eligible", "not eligible: no PR changes tests and code, so no stage can be verified")
    assert chains[states.mined] == ("mined", "eligible, not rolled out yet")
    state, text = chains[states.retrying]
    assert state == "retrying"
    assert text.startswith("failed, retrying at ")
    assert " UTC: fetching the repository failed (MirrorError: " in text


def test_the_funnel_counts_chains_that_were_not_eligible_or_failed(states_app: Flask) -> None:
    [funnel] = overview(states_app)["funnel"]
    assert funnel["repository"] == REPOSITORY
    steps = [(step["name"], step["count"]) for step in funnel["steps"]]
    assert steps == [("chains mined", 6), ("eligible (mining)", 5), ("rolled out", 3),
                     ("environment built", 2), ("eligible", 1), ("accepted", 1)]
    lost = {step["name"]: step["lost"] for step in funnel["steps"]}
    assert lost["eligible (mining)"] == {"not eligible by mining": 1}
    assert lost["rolled out"] == {"retrying": 1, "not rolled out yet": 1}
    assert lost["environment built"] == {"the environment could not be built": 1}
    assert lost["eligible"] == {"no verifiable stage: tests do not run": 1}
    assert funnel["acceptance_rate"] == 0.333


def test_a_retrying_job_is_counted_and_its_delivery_says_so(states_app: Flask,
                                                            states: Arranged) -> None:
    data = overview(states_app)
    queues = {q["name"]: q for q in data["queues"]["queues"]}
    rollouts = queues["davinci-rollouts"]
    assert (rollouts["queued"], rollouts["running"], rollouts["retrying"],
            rollouts["failed"]) == (0, 0, 1, 0)
    [retrying] = data["queues"]["retrying_jobs"]
    assert retrying["id"] == states.retrying_job
    assert retrying["status"].startswith("failed, retrying at ")
    assert " UTC: fetching the repository failed (MirrorError" in retrying["status"]
    delivery = next(d for d in data["deliveries"] if d["id"] == "d-retry")
    [job] = delivery["job_statuses"]
    assert job["id"] == states.retrying_job
    assert job["status"].startswith("failed, retrying at ")
    assert " UTC: fetching the repository failed" in job["status"]


def test_recent_rollouts_carry_their_verdicts(states_app: Flask, states: Arranged) -> None:
    runs = {r["chain"]: r for r in overview(states_app)["rollouts"]}
    assert set(runs) == {states.accepted, states.not_eligible, states.no_environment,
                         states.retrying}
    accepted = runs[states.accepted]
    assert accepted["record_id"] == states.record_id
    assert [s["pr"] for s in accepted["stages"]] == [20, 21]
    assert runs[states.not_eligible]["reason"] == NO_STAGE
    assert runs[states.retrying]["state"] == "retrying" and runs[states.retrying]["retry_at"]
