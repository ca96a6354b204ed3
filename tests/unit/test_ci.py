"""The hosted kind workflow runs the same test command as .ci/run and the README."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
TEST_COMMAND = "make test"


def test_ci_run_is_the_readme_s_test_command() -> None:
    assert f"exec {TEST_COMMAND}" in (REPO / ".ci" / "run").read_text()
    assert TEST_COMMAND in (REPO / "README.md").read_text()


def test_the_kind_workflow_runs_that_command_on_a_kind_cluster() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "e2e-kind.yml").read_text())
    (job,) = workflow["jobs"].values()
    assert job["env"]["STOWAGE_CLUSTER_PROVIDER"] == "kind"
    commands = [step.get("run", "") for step in job["steps"]]
    assert any(command.endswith(TEST_COMMAND) for command in commands)
    assert job["timeout-minutes"] <= 90
    assert (REPO / "e2e" / "kind" / "config.yaml").is_file()
