"""apim.settings.env and the production refusal, tested in subprocesses where settings load."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apim.settings.env import BASE_DIR, Env, EnvError, parse_database_url


def test_parse_postgres_url():
    parsed = parse_database_url("postgres://app:s%40cret@db.internal:6543/apim?sslmode=require")
    assert parsed["ENGINE"] == "django.db.backends.postgresql"
    assert (parsed["NAME"], parsed["USER"], parsed["PASSWORD"]) == ("apim", "app", "s@cret")
    assert (parsed["HOST"], parsed["PORT"]) == ("db.internal", "6543")
    assert parsed["OPTIONS"] == {"sslmode": "require"}


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite:////var/data/apim.sqlite3", "/var/data/apim.sqlite3"),
        ("sqlite:///rel.sqlite3", "rel.sqlite3"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_parse_sqlite_url(url, name):
    assert parse_database_url(url)["NAME"] == name


@pytest.mark.parametrize(
    ("url", "message"),
    [("mysql://x/y", "not supported"), ("postgres://host:5432/", "database name"), ("sqlite://", "needs a path")],
)
def test_bad_database_urls(url, message):
    with pytest.raises(EnvError, match=message):
        parse_database_url(url)


def test_typed_getters_name_the_variable():
    env = Env({"FLAG": "maybe", "COUNT": "ten", "LIST": "a, b,,c"})
    with pytest.raises(EnvError, match="FLAG must be true or false"):
        env.get_bool("FLAG", False)
    with pytest.raises(EnvError, match="COUNT must be a whole number"):
        env.get_int("COUNT", 1)
    assert env.get_list("LIST") == ["a", "b", "c"]
    assert env.get_bool("MISSING", True) is True


def test_local_secret_is_generated_once_and_kept(tmp_path):
    env = Env({"APIM_DATA_DIR": str(tmp_path)})
    first = env.persistent_secret("SECRET_KEY", "secret_key", generate=True)
    second = env.persistent_secret("SECRET_KEY", "secret_key", generate=True)
    assert first == second and len(first) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert env.persistent_secret("OTHER", "other", generate=False) is None


def _run_settings(extra_env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "API_KEY", "DJANGO_SETTINGS"))
    }
    env.update({"APIM_DATA_DIR": str(tmp_path), **extra_env})
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_insecure_defaults(tmp_path):
    result = _run_settings({"APIM_ENV": "production"}, tmp_path)
    assert result.returncode != 0
    for needle in (
        "refuses to start in production",
        "SECRET_KEY",
        "API_KEY_PEPPER",
        "DATABASE_URL",
        "REDIS_URL",
        "ALLOWED_HOSTS",
        "CELERY_BROKER_URL",
    ):
        assert needle in result.stderr
    assert not (tmp_path / "secret_key").exists(), "production must never generate a secret"


def test_production_starts_when_configured(tmp_path):
    result = _run_settings(
        {
            "APIM_ENV": "production",
            "SECRET_KEY": "k" * 20 + "Q9!x" * 10,
            "API_KEY_PEPPER": "p" * 40,
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/1",
            "ALLOWED_HOSTS": "apim.example.com",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_unknown_apim_env_is_refused(tmp_path):
    result = _run_settings({"APIM_ENV": "staging"}, tmp_path)
    assert result.returncode != 0
    assert "APIM_ENV must be one of" in result.stderr
