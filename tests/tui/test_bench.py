"""The dashboard benchmark runs and reports its figures (a small run; `agentnet bench tui` does 100,000)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentnet.tui.bench import format_result, run_tui_bench, synthetic_stream
from agentnet.tui.model import DashboardModel


def test_synthetic_stream_is_deterministic_and_well_formed() -> None:
    first = list(synthetic_stream(2_000))
    assert first == list(synthetic_stream(2_000))
    model = DashboardModel()
    for item in first:
        model.apply(item)
    assert model.bad_items == 0 and model.missed_total == 0
    assert model.events_total >= 2_000
    assert model.envelopes and model.cursors


def test_run_tui_bench_reports_rate_latency_and_memory() -> None:
    result = run_tui_bench(3_000, key_interval=0.02, model_only_events=3_000)
    assert result["events"] >= 3_000
    assert result["events_per_s"] > 0 and result["model_events_per_s"] > 0
    assert result["refreshes"] >= 1
    assert result["rss_mb"] > 0
    assert result["buffers"]["envelopes"] <= result["buffers"]["envelopes_max"]
    text = format_result(result)
    assert "events/s" in text and "RSS" in text


def test_bench_scale_attached_shows_a_real_hubs_totals_and_times_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import orjson
    import psutil

    from agentnet.bench.scale import ScaleConfig, run_scale

    cfg = ScaleConfig(
        channels=300, dashboard_agents=5, dashboard_events=600, dashboard_rate=300, dir=tmp_path, parts=("attached",)
    )
    assert run_scale(cfg, as_json=True, quiet=True) == 0
    out = orjson.loads(capsys.readouterr().out)["attached"]
    assert out["total_channels"] == 301  # 300 closed consults in the store + the streamer's channel
    assert out["total_agents"] == 5
    assert out["channels_title"] == "channels · 301 total · 5 agents"
    assert out["key_presses"] > 0 and out["key_latency_ms"]["p95"] is not None
    assert out["events_per_s"] > 0
    assert not psutil.Process().children(recursive=True)  # the hub and the streamer are gone
