"""The soak (``python -m benchmarks soak``) in short: 20 s of mixed load through the fault proxy while every kind
of fault strikes at least once (store and server process ``kill -9``, store SIGSTOP, link latency and cuts).
The exactly-once ledger must hold: every acknowledged job completed, none stored twice, none delivered again
after its completion, no 500 and no hang."""

from __future__ import annotations

from benchmarks.soak import BASE_FAULTS, PROXY_FAULTS, run_soak


async def test_short_soak_under_every_kind_of_fault():
    report = await run_soak(20, proxied=True, seed=15, gap=(1.0, 2.0), retention=5, say=print)
    print("\n[soak]", report.summary())
    assert set(report.faults) == set(BASE_FAULTS + PROXY_FAULTS), report.faults
    ledger = report.ledger
    assert ledger.acked > 0 and ledger.completed == ledger.acked
    assert not ledger.lost, f"{len(ledger.lost)} acknowledged jobs lost"
    assert report.ok, ledger
    # The faults did strike the load: some answers were 503s or cut connections.
    assert any(not key.endswith(" 200") and not key.endswith(" 201") for key in report.responses), report.responses
