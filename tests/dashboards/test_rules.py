"""dashboards/rules: promtool checks the rule files and runs their unit tests; every
alert is tested firing and not firing, carries a severity and a runbook link to a
section of docs/runbooks.md that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.dashboards.queries import RULE_TESTS, RULES, alerts, rule_files, rule_tests

RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_URL = "https://github.com/shorty-dev/shorty/blob/main/docs/runbooks.md#"


def promtool_run(promtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, timeout=120, cwd=RULES
    )


def test_promtool_checks_the_rule_files(promtool: Path):
    done = promtool_run(promtool, "check", "rules", *(path.name for path in rule_files()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(rule_files())


def test_the_rules_pass_their_unit_tests(promtool: Path):
    files = sorted(str(path.relative_to(RULES)) for path in RULE_TESTS.glob("*_test.yaml"))
    done = promtool_run(promtool, "test", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(files), done.stdout


def test_a_wrong_expectation_fails(promtool: Path, tmp_path: Path):
    """The unit tests can fail: one expecting an alert that does not fire does."""
    test = tmp_path / "wrong_test.yaml"
    test.write_text(
        f"rule_files: [{RULES / 'shorty.yaml'}]\n"
        "tests:\n"
        "  - interval: 1m\n"
        "    input_series:\n"
        "      - series: 'shorty_dlq_length{namespace=\"shorty\"}'\n"
        "        values: '3x30'\n"
        "    alert_rule_test:\n"
        "      - eval_time: 20m\n"
        "        alertname: ShortyDeadLettersGrowing\n"
        "        exp_alerts: [{exp_labels: {severity: warning, namespace: shorty}}]\n"
    )
    done = promtool_run(promtool, "test", "rules", str(test))
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr


def expectations() -> dict[str, dict[str, int]]:
    """alertname → how many checks expect it firing ("firing") and not ("silent")."""
    found: dict[str, dict[str, int]] = {}
    for _, test in rule_tests():
        for check in test.get("alert_rule_test", []):
            kind = "firing" if check.get("exp_alerts") else "silent"
            counts = found.setdefault(check["alertname"], {"firing": 0, "silent": 0})
            counts[kind] += 1
    return found


@pytest.mark.parametrize("alert", sorted(alerts()))
def test_every_alert_is_tested_firing_and_not_firing(alert: str):
    counts = expectations().get(alert, {"firing": 0, "silent": 0})
    assert counts["firing"] > 0, f"{alert}: no promtool test sees it fire"
    assert counts["silent"] > 0, f"{alert}: no promtool test sees it stay silent"


def test_the_tests_name_only_alerts_that_exist():
    assert set(expectations()) <= set(alerts())


def runbook_anchors() -> set[str]:
    """GitHub's anchors of the headings of docs/runbooks.md."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", RUNBOOKS.read_text(), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("alert", sorted(alerts()))
def test_every_alert_has_a_severity_a_summary_and_a_runbook(alert: str):
    rule = alerts()[alert]
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert annotations["summary"]
    assert annotations["description"]
    url = annotations["runbook_url"]
    assert url == RUNBOOK_URL + alert.lower(), url
    assert alert.lower() in runbook_anchors(), f"docs/runbooks.md has no section {alert}"


def test_every_runbook_section_is_an_alert():
    """No section for an alert that is gone (the headings under "Alerts")."""
    text = RUNBOOKS.read_text()
    sections = re.findall(r"^### (Shorty\w+)$", text, re.MULTILINE)
    assert sorted(sections) == sorted(alerts())
