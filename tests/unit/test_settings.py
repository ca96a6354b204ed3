"""Settings: flags over environment over defaults, and the CLI built from the same table."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stowage.cli import build_parser, main
from stowage.settings import OPTIONS, LogFormat, LogLevel, Settings

pytestmark = pytest.mark.unit


def run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_defaults_when_nothing_is_given() -> None:
    assert Settings.resolve(run_args(), {}) == Settings()


def test_environment_is_read_and_flags_win() -> None:
    env = {
        "STOWAGE_LOG_FORMAT": "json",
        "STOWAGE_LOG_LEVEL": "debug",
        "STOWAGE_HEALTH_PORT": "18080",
        "STOWAGE_METRICS_PORT": "19090",
        "STOWAGE_KUBECONFIG": "/tmp/env-kubeconfig",
        "STOWAGE_RESYNC_INTERVAL": "2.5",
    }
    settings = Settings.resolve(run_args("--health-port", "28080", "--log-level", "error"), env)
    assert settings.log_format is LogFormat.JSON
    assert settings.log_level is LogLevel.ERROR
    assert settings.health_port == 28080
    assert settings.metrics_port == 19090
    assert settings.kubeconfig == Path("/tmp/env-kubeconfig")
    assert settings.resync_interval == 2.5


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"STOWAGE_LOG_FORMAT": "xml"}, "STOWAGE_LOG_FORMAT"),
        ({"STOWAGE_METRICS_PORT": "0"}, "STOWAGE_METRICS_PORT"),
        ({"STOWAGE_WORKERS": "-1"}, "STOWAGE_WORKERS"),
        ({"STOWAGE_RESYNC_INTERVAL": "soon"}, "STOWAGE_RESYNC_INTERVAL"),
        ({"STOWAGE_NAMESPACE": " "}, "STOWAGE_NAMESPACE"),
    ],
)
def test_bad_values_are_refused_naming_their_source(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Settings.resolve(run_args(), env)


def test_every_setting_has_a_documented_flag_and_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--help"])
    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    fields = {f for f in Settings.__dataclass_fields__}
    assert {option.field for option in OPTIONS} == fields
    for option in OPTIONS:
        assert option.flag in help_text
        assert option.env_var in help_text


def test_a_bad_value_exits_with_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STOWAGE_HEALTH_PORT", "99999")
    with pytest.raises(SystemExit) as exited:
        main(["run"])
    assert exited.value.code == 2
    assert "STOWAGE_HEALTH_PORT: 99999 is not a TCP port" in capsys.readouterr().err


def test_crds_prints_the_generated_definitions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds"]) == 0
    printed = capsys.readouterr().out
    assert "name: storagebackends.stowage.io" in printed
    assert "kind: CustomResourceDefinition" in printed
