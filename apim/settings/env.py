"""The one place settings read the environment.

Every setting that can vary between a laptop and a cluster is read here, through
the module-level ``env`` object, so `grep env.` lists them all. Nothing in this
module imports Django: ``manage.py`` uses it to pick the settings module before
Django is configured.

Embedded defaults (nothing set) give a working local install: SQLite under the
data folder, local-memory cache, in-memory channel layer, a filesystem Celery
broker, and secrets generated once and kept in the data folder. Production mode
(``APIM_ENV=production``) accepts none of those defaults for secrets; see
``apim.settings.production``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent.parent

ENVIRONMENTS = ("local", "production", "test")


class EnvError(ValueError):
    """A variable is set to something the project cannot use."""


def default_settings_module() -> str:
    """The settings module for ``APIM_ENV`` (``local`` unless told otherwise)."""
    name = os.environ.get("APIM_ENV", "local").strip().lower() or "local"
    if name not in ENVIRONMENTS:
        raise EnvError(f"APIM_ENV must be one of {', '.join(ENVIRONMENTS)}, not {name!r}")
    return f"apim.settings.{name}"


@dataclass(frozen=True)
class Env:
    """Typed access to ``os.environ``. Errors name the variable and what is wrong."""

    environ: os._Environ[str] | dict[str, str]

    def get_str(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return default
        return value.strip()

    def get_bool(self, name: str, default: bool) -> bool:
        value = self.get_str(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise EnvError(f"{name} must be true or false, not {value!r}")

    def get_int(self, name: str, default: int) -> int:
        value = self.get_str(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise EnvError(f"{name} must be a whole number, not {value!r}") from None

    def get_list(self, name: str, default: list[str] | None = None) -> list[str]:
        value = self.get_str(name)
        if value is None:
            return list(default or [])
        return [item.strip() for item in value.split(",") if item.strip()]

    @property
    def apim_env(self) -> str:
        return default_settings_module().rsplit(".", 1)[1]

    @property
    def data_dir(self) -> Path:
        path = Path(self.get_str("APIM_DATA_DIR") or BASE_DIR / "var")
        return path.resolve()

    def persistent_secret(self, name: str, filename: str, *, generate: bool) -> str | None:
        """``name`` from the environment, else a value kept in the data folder.

        With ``generate`` a missing file is created once (mode 0600) so a local
        install keeps the same secret across restarts. Production passes
        ``generate=False`` and treats ``None`` as fatal.
        """
        value = self.get_str(name)
        if value is not None:
            return value
        if not generate:
            return None
        path = self.data_dir / filename
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(50)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token)
        return token


env = Env(os.environ)


def parse_database_url(url: str) -> dict[str, object]:
    """Turn ``DATABASE_URL`` into a Django ``DATABASES`` entry.

    Accepts ``postgres://`` / ``postgresql://`` (psycopg 3) and ``sqlite:///path``
    (``sqlite:///:memory:`` for memory). Query parameters become connection
    ``OPTIONS`` (e.g. ``?sslmode=require``).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # As dj-database-url: sqlite:///rel.sqlite3 is relative, sqlite:////abs is absolute.
        path = unquote(parts.netloc + parts.path)
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise EnvError("DATABASE_URL for SQLite needs a path: sqlite:////absolute/path.sqlite3")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    if scheme in ("postgres", "postgresql", "pgsql"):
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise EnvError("DATABASE_URL for PostgreSQL needs a database name: postgres://user@host:5432/name")
        options = dict(parse_qsl(parts.query))
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    raise EnvError(f"DATABASE_URL scheme {scheme!r} is not supported; use postgres:// or sqlite://")
