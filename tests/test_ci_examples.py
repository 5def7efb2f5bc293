"""The CI examples (examples/ci/): every `gala` command in them parses with gala's own command line, the
three produce and publish the same JUnit file, and the GitHub pair is fork-safe (the gate workflow asks
for no write permission; the report workflow, triggered by workflow_run, reads the gate's artifact)."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from conftest import REPO
from gala.cli import build_parser

CI = REPO / "examples" / "ci"


def gala_commands(text: str, prefix: str = "") -> list[list[str]]:
    """Every `gala ...` command line in a script (YAML folded or Groovy sh '...'), as argv after `gala`."""
    out = []
    for m in re.finditer(rf"(?:^|[\s'\"]){prefix}gala ((?:run|check|gate|plan|diff)\b[^'\"\n]*)", text):
        out.append(shlex.split(m.group(1)))
    return out


def run_script(step: dict) -> str:
    return " ".join(step.get("run", "").split())  # folded `>-` scalars and line breaks as one line


def parses(argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of saying "unrecognized" or "invalid"
        pytest.fail(f"gala {' '.join(argv)}: not a valid command line ({exc})")


def test_github_workflow_gates_and_is_fork_safe():
    flow = yaml.safe_load((CI / "github-actions.yml").read_text())
    assert flow["permissions"] == {"contents": "read"}  # a fork's token is read-only: ask for nothing more
    assert "pull_request" in flow[True]  # (YAML 1.1 reads the key `on` as True)
    steps = flow["jobs"]["gate"]["steps"]
    commands = [argv for s in steps for argv in gala_commands(run_script(s))]
    assert [c[0] for c in commands] == ["check", "run"]
    for argv in commands:
        parses(argv)
    run = next(c for c in commands if c[0] == "run")
    out = run[run.index("--out") + 1]
    assert "--budgets" in run
    assert not any("test-reporter" in s.get("uses", "") for s in steps)  # it would fail on a fork's PR
    junit = next(s for s in steps if s.get("with", {}).get("name") == "gate-junit")
    assert junit["with"]["path"] == f"{out}/*/gate/junit.xml"  # where gala run --budgets writes it

    report = yaml.safe_load((CI / "github-actions-report.yml").read_text())
    trigger = report[True]["workflow_run"]
    assert trigger["workflows"] == [flow["name"]] and trigger["types"] == ["completed"]
    assert report["permissions"]["checks"] == "write"
    steps = report["jobs"]["report"]["steps"]
    assert not any("checkout" in s.get("uses", "") for s in steps)  # never the pull request's code
    download = next(s for s in steps if "download-artifact" in s.get("uses", ""))
    assert download["with"]["name"] == "gate-junit" and "workflow_run.id" in download["with"]["run-id"]
    reporter = next(s for s in steps if "test-reporter" in s.get("uses", ""))
    assert reporter["with"]["path"].startswith(download["with"]["path"] + "/")
    assert reporter["with"]["path"].endswith("junit.xml") and reporter["with"]["reporter"] == "java-junit"


def test_gitlab_job_publishes_the_junit_report():
    job = yaml.safe_load((CI / "gitlab-ci.yml").read_text())["rehearsal-gate"]
    commands = [argv for line in job["script"] for argv in gala_commands(line)]
    assert [c[0] for c in commands] == ["check", "run"]
    for argv in commands:
        parses(argv)
    run = commands[1]
    assert job["artifacts"]["reports"]["junit"] == f"{run[run.index('--out') + 1]}/*/gate/junit.xml"
    assert job["artifacts"]["when"] == "always"


def test_jenkinsfile_runs_gala_and_publishes_the_junit_report():
    text = (CI / "Jenkinsfile").read_text()
    commands = gala_commands(text, prefix=r"\.venv/bin/")  # the commands of its sh steps, not its messages
    assert [c[0] for c in commands] == ["check", "run"]
    for argv in commands:
        parses(argv)
    run = commands[1]
    assert f"junit testResults: '{run[run.index('--out') + 1]}/*/gate/junit.xml'" in text
    assert "code == 99" in text  # the gate's exit code is told apart from a failed run
