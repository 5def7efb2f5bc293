"""Watching a run live: a real short run scraped over HTTP while it runs (`--metrics-port`), its
OpenTelemetry metrics and request spans read back from the console exporters (`--otel`, Locust's own
support plus gala's phase and link), Locust's web UI driven by the scenario's shape (`--web-ui`), and the
Grafana dashboard in examples/ naming only metrics gala exports. Two runs of tests/scenarios/tiny-gala.yaml (5 s each)."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from run_helpers import start_run

from conftest import REPO
from gala.contract.phases import owner
from gala.contract.results import load_run
from loadtests.locust_plugin.exposition import METRIC_NAMES
from loadtests.orchestrator.procs import free_port

pytestmark = pytest.mark.timeout(180)
TINY = REPO / "tests" / "scenarios" / "tiny-gala.yaml"
DASHBOARD = REPO / "examples" / "grafana" / "gala-dashboard.json"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        return resp.read().decode("utf-8")


def scrape(port: int) -> dict[str, dict]:
    """{family name: {(sample name, sorted labels): value}} from one scrape."""
    out: dict[str, dict] = {}
    for fam in text_string_to_metric_families(get(f"http://127.0.0.1:{port}/metrics")):
        out[fam.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}
    return out


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """A tiny run with --metrics-port and --otel (console exporters: metrics every second, every span),
    scraped twice meanwhile; with Locust's habits too: -t 4s stops it a second before the scenario's end,
    -u 20 -r 50 scale it; half the chat link's replies are injected errors (some 14 of 300 requests)."""
    tmp = tmp_path_factory.mktemp("watched")
    port = free_port()
    mp = pytest.MonkeyPatch()
    for k, v in {"OTEL_METRICS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "console", "OTEL_LOGS_EXPORTER": "none",
                 "OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_SERVICE_NAME": "gala-test"}.items():
        mp.setenv(k, v)
    try:
        run = start_run(tmp / "out", "--scenario", str(TINY), "--metrics-port", str(port), "--otel", "--quiet",
                        "-t", "4s", "-u", "20", "-r", "50", "--inject", "chat:errors=0.5")
    finally:
        mp.undo()
    try:
        # live.json is rewritten once a second: wait for two of its writes, well before -t ends the run at 4 s
        run.wait_for(lambda: (run.live() or {}).get("t_s", 0) >= 0.9, 90, "1 s of load")
        first = scrape(port)
        run.wait_for(lambda: (run.live() or {}).get("t_s", 0) >= 1.9, 30, "2 s of load")
        second = scrape(port)
        code = run.finish(120)
    finally:
        if run.proc.poll() is None:
            run.kill()
    assert code == 0, run.output()
    return {"first": first, "second": second, "run": load_run(run.run_dir()), "survivors": run.survivors()}


def _by(samples: dict, sample: str, **want) -> dict[tuple, float]:
    return {labels: v for (name, labels), v in samples.items()
            if name == sample and all(dict(labels).get(k) == x for k, x in want.items())}


def test_prometheus_endpoint_serves_live_per_phase_and_link_figures(watched):
    first, second, run = watched["first"], watched["second"], watched["run"]
    assert set(second) == {n.removesuffix("_total") for n in METRIC_NAMES}
    # counters per (phase, link) grow while the run goes
    req1 = _by(first["gala_requests"], "gala_requests_total")
    req2 = _by(second["gala_requests"], "gala_requests_total")
    assert sum(req2.values()) > sum(req1.values()) > 0
    assert {dict(k)["phase"] for k in req2} <= {"grab", "share-burst", "chat"}
    assert (("link", "grab"), ("phase", "grab")) in req2
    # the histogram counts exactly the requests, per phase and link, and its buckets are cumulative
    for labels, n in req2.items():
        hist = second["gala_request_duration_seconds"]
        assert hist[("gala_request_duration_seconds_count", labels)] == n
        buckets = sorted((float(dict(l)["le"]), v) for (name, l), v in hist.items()
                         if name.endswith("_bucket") and all(x in l for x in labels))
        assert [v for _, v in buckets] == sorted(v for _, v in buckets) and buckets[-1] == (float("inf"), n)
    # users per class, the running phase, intended against achieved, the generator's CPU
    assert sum(_by(second["gala_users"], "gala_users").values()) > 0
    assert 1.0 in _by(second["gala_phase_active"], "gala_phase_active").values()
    assert _by(second["gala_intended_rps"], "gala_intended_rps", link="grab")
    assert set(dict(k)["link"] for k in _by(second["gala_achieved_rps"], "gala_achieved_rps")) == set(run.info.links)
    assert list(_by(second["gala_generator_cpu_percent"], "gala_generator_cpu_percent", process="local").values())[0] > 0
    assert second["gala_run_seconds"][("gala_run_seconds", ())] >= 1.9
    # never more than the run's final totals
    final = run.phase_link.set_index(["phase", "link"])["requests"]
    for labels, n in req2.items():
        assert n <= final[(dict(labels)["phase"], dict(labels)["link"])]
    assert watched["survivors"] == []


def console_exports(log: str) -> list[dict]:
    """The JSON documents the OpenTelemetry console exporter printed into locust.log."""
    docs, decoder = [], json.JSONDecoder()
    for m in re.finditer(r"^\{\s*\n\s*\"resource_metrics\"", log, flags=re.M):
        docs.append(decoder.raw_decode(log, m.start())[0])
    return docs


def test_run_time_caps_the_run_and_users_scale_it_as_locust_habits_expect(watched):
    info = watched["run"].info
    assert info.model_extra["stopped_by"] == "run-time"
    assert info.scenario.model_extra["users_scale"] == pytest.approx(0.8)   # the busiest moment: 25 users -> 20
    assert info.scenario.model_extra["spawn_rate"] == 50 and info.scenario.model_extra["run_time_s"] == 4
    chat = next(p for p in info.phases if p.name == "chat")
    assert chat.started_s is not None and chat.ended_s < chat.planned_end_s - 0.5
    # every class ran at its scaled count: the most users at once (Prometheus) never above 20
    users = _by(watched["second"]["gala_users"], "gala_users")
    assert 0 < sum(users.values()) <= 20


def test_opentelemetry_metrics_carry_phase_and_link(watched):
    run = watched["run"]
    exports = console_exports((run.path / "locust.log").read_text())
    assert exports, "no OpenTelemetry export in locust.log"
    metrics = {}
    for doc in exports:  # cumulative temporality: the last export of each metric holds the whole run
        for rm in doc["resource_metrics"]:
            assert rm["resource"]["attributes"]["service.name"] == "gala-test"
            for sm in rm["scope_metrics"]:
                for m in sm["metrics"]:
                    metrics[(sm["scope"]["name"], m["name"])] = m["data"]["data_points"]
    assert ("locust", "locust.client.duration") in metrics  # Locust's own, passed through
    points = metrics[("gala", "gala.client.duration")]
    phases = {p.name for p in run.info.phases}
    assert all(p["attributes"]["phase"] in phases and p["attributes"]["link"] in run.info.links for p in points)
    counted: dict[tuple[str, str], int] = {}
    for p in points:
        key = (p["attributes"]["phase"], p["attributes"]["link"])
        counted[key] = counted.get(key, 0) + p["count"]
    stats = run.phase_link[run.phase_link["phase"] != "_all"]
    stats = stats[stats["link"] != "_all"].set_index(["phase", "link"])["requests"].to_dict()
    assert counted == stats  # the exporter's last (exit) export saw every request, attributed as gala did
    intended = metrics[("gala", "gala.link.intended_rate")]
    assert {p["attributes"]["link"] for p in intended} <= set(run.info.links)


def console_spans(log: str) -> list[dict]:
    """The spans the OpenTelemetry console exporter printed into locust.log (one JSON document each)."""
    decoder = json.JSONDecoder()
    return [decoder.raw_decode(log, m.start())[0] for m in re.finditer(r'^\{\s*\n\s*"name": ', log, flags=re.M)]


def test_opentelemetry_spans_one_per_request_with_phase_and_link(watched):
    run = watched["run"]
    spans = console_spans((run.path / "locust.log").read_text())
    assert spans, "no span in locust.log"
    phases = {p.name for p in run.info.phases}
    table = run.phase_link[(run.phase_link["phase"] != "_all") & (run.phase_link["link"] != "_all")]
    stats = table.set_index(["phase", "link"])[["requests", "failures"]]
    counted: dict[tuple[str, str], list[int]] = {}
    for s in spans:
        a = s["attributes"]
        assert s["kind"] == "SpanKind.CLIENT" and s["resource"]["attributes"]["service.name"] == "gala-test"
        assert a["gala.phase"] in phases and a["gala.link"] in run.info.links, a
        # gala's users are FastHttpUsers: named as Locust names its own spans, with the reply's method and status
        assert s["name"] == f"{a['http.request.method']} {a['gala.request.name']}"
        assert a["gala.request.name"].split(":")[0] == a["gala.link"]
        failed = s["status"]["status_code"] == "ERROR"
        assert failed == ("error.type" in a)
        if not failed:
            assert 200 <= a["http.response.status_code"] < 400
        cell = counted.setdefault((a["gala.phase"], a["gala.link"]), [0, 0])
        cell[0] += 1
        cell[1] += failed
    # one span per request, attributed to the phase and link gala's own tables give it, failures as failures
    assert counted == {k: [int(r.requests), int(r.failures)] for k, r in stats.iterrows()}
    assert {p for p, _ in counted} == phases and sum(f for _, f in counted.values()) > 0
    # a span starts when its request began: the phase that owns that moment (phases.json) is its gala.phase
    times = json.loads((run.path / "phases.json").read_text())
    names = [p["name"] for p in times["phases"]]
    starts, ends = [p["started_s"] for p in times["phases"]], [p["ended_s"] for p in times["phases"]]
    edges = [e for e in starts + ends if e is not None]
    checked = 0
    for s in spans:
        t = _epoch(s["start_time"]) - times["started_at_epoch"]
        assert 0 <= t <= times["stopped_s"] and _epoch(s["end_time"]) >= _epoch(s["start_time"]), s
        if min(abs(t - e) for e in edges) > 0.001:  # the printed times are to the microsecond
            assert names[owner(starts, ends, t)] == s["attributes"]["gala.phase"], (t, s)
            checked += 1
    assert checked >= 0.9 * len(spans)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_web_ui_is_driven_by_the_scenarios_shape(tmp_path):
    port = free_port()
    run = start_run(tmp_path / "out", "--scenario", str(TINY), "--web-ui", str(port), "--quiet")
    try:
        run.wait_for(lambda: (run.live() or {}).get("t_s", 0) >= 1.0, 90, "1 s of load")
        assert "<html" in get(f"http://127.0.0.1:{port}/").lower()
        live = json.loads(get(f"http://127.0.0.1:{port}/stats/requests"))
        assert live["state"] in ("spawning", "running") and live["user_count"] > 0
        names = {s["name"] for s in live["stats"]}
        assert "grab:tap" in names
        code = run.finish(120)
    finally:
        if run.proc.poll() is None:
            run.kill()
    assert code == 0, run.output()
    info = load_run(run.run_dir()).info
    assert info.status == "complete" and info.model_extra["stopped_by"] == "shape"
    assert all(p.started_s is not None and p.ended_s is not None for p in info.phases)
    assert run.survivors() == []


def test_grafana_dashboard_names_only_metrics_gala_exports():
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in doc["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 6
    names = set()
    for expr in exprs:
        names |= set(re.findall(r"\b(gala_[a-z_]+)\b", expr))
    exported = set(METRIC_NAMES) | {f"gala_request_duration_seconds_{s}" for s in ("bucket", "sum", "count")}
    assert names and names <= exported, names - exported
    # every metric gala exports is on the dashboard
    assert {n.removesuffix("_total") for n in METRIC_NAMES} <= {re.sub(r"_(bucket|sum|count|total)$", "", n)
                                                                for n in names}


def test_buckets_and_intended_rates_are_computed_as_documented():
    from gala.contract.histogram import LatencyStats
    from loadtests.locust_plugin.exposition import cumulative_buckets, intended_rps_now
    from loadtests.scenario import DEFAULT_SCENARIO, load_scenario

    cell = LatencyStats()
    for ms in (3, 7, 7, 40, 300, 20000):
        cell.add(ms, failed=False)
    got = dict(cumulative_buckets(cell))
    assert (got["0.005"], got["0.01"], got["0.05"], got["0.25"], got["0.5"], got["10"], got["+Inf"]) == (1, 3, 4, 4, 5, 5, 6)
    sc = load_scenario(DEFAULT_SCENARIO)
    # at 30 s grab (250 GrabUser) and share-burst (60 GrabUser, 200 ShareUser) overlap
    now = intended_rps_now(sc, sc.planned_phases(), 30.0)
    assert now == pytest.approx({"grab": 310 * 3 + 200 * 2 * 0.5, "share": 200 * 2 * 0.35, "setup": 200 * 2 * 0.15})
