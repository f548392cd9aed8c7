"""The packaging, CLI, settings and deployment files hold what the README promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO", "TELEGRAM"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        timeout=60,
        check=False,
    )


def test_help_lists_every_subcommand() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for sub in ("run", "chat", "classify", "sim"):
        assert sub in result.stdout


def test_bad_setting_is_one_clear_line_and_exit_2() -> None:
    result = run_cli("run", env={"EXPORT_POLL_INTERVAL_S": "soon"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "EXPORT_POLL_INTERVAL_S" in lines[0]
    assert "Traceback" not in result.stderr


def test_secrets_stay_out_of_repr_and_errors() -> None:
    secret = "123456789:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    settings = load_settings(telegram_bot_token=secret, nemo_token="nmv_usr_abcdefghijkl")
    assert secret not in repr(settings)
    assert "nmv_usr_abcdefghijkl" not in repr(settings)
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == secret
    with pytest.raises(SettingsError) as info:
        load_settings(telegram_bot_token=secret, redis_url="http://nope")
    assert "REDIS_URL" in str(info.value)
    assert secret not in str(info.value)


def test_id_lists_accept_commas() -> None:
    settings = load_settings(allowed_user_ids="1, 2,3", admin_user_ids="")
    assert settings.allowed_user_ids == [1, 2, 3]
    assert settings.admin_user_ids == []


def test_readme_lists_every_setting() -> None:
    from bot.settings import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]
    assert missing == []


def test_compose_has_bot_redis_volume_and_healthchecks() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"bot", "redis"} <= set(services)
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert "redis-data" in compose["volumes"]
    assert any(v.startswith("redis-data:") for v in redis["volumes"])
    assert "healthcheck" in redis
    assert services["bot"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["bot"]["environment"]["REDIS_URL"].startswith("redis://redis:")
    grace = services["bot"]["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) > 10, "more than the 10 s a stop takes"


def test_dockerfile_runs_as_non_root_without_build_stage_tools() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    final_stage = text.split("FROM ")[-1]
    assert "USER " in final_stage
    assert "slim" in final_stage.splitlines()[0]
    assert "gcc" not in final_stage and "build-essential" not in final_stage


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in ci
    assert "make test" in readme and "make run" in readme
