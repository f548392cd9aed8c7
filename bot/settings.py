"""The one settings object, read once at start-up from the environment and `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from backend import MIB, UploadLimits

DEFAULT_API_BASE = "https://mega-api-prod.nemovideo.ai"

IdList = Annotated[list[int], NoDecode]


class SecretUrl(SecretStr):
    """A URL that may carry a password: shown everywhere with the password masked."""

    def _display(self) -> str:
        url = self.get_secret_value()
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[-1]
        return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


class Settings(BaseSettings):
    """Every setting of the product; the README lists each with its default."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # Telegram
    telegram_bot_token: SecretStr | None = None
    telegram_api_base: str = "https://api.telegram.org/bot"
    telegram_file_base: str = "https://api.telegram.org/file/bot"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0"  # noqa: S104 - a webhook server must listen beyond loopback
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    allowed_user_ids: IdList = Field(default_factory=list)
    allowed_chat_ids: IdList = Field(default_factory=list)
    admin_user_ids: IdList = Field(default_factory=list)
    telegram_max_download_mb: float = Field(default=20, gt=0)
    telegram_max_upload_mb: float = Field(default=50, gt=0)
    media_group_wait_s: float = Field(default=1.2, ge=0)
    telegram_video_retry_s: float = Field(default=300, ge=0)

    # NemoVideo backend
    nemo_api_base: str = DEFAULT_API_BASE
    nemo_token: SecretStr | None = None
    skill_platform: str | None = None
    rate_limit_wait_s: float = Field(default=30, ge=0)
    request_timeout_s: float = Field(default=30, gt=0)
    chat_timeout_s: float = Field(default=900, gt=0)
    export_poll_interval_s: float = Field(default=5, gt=0)
    export_deadline_s: float = Field(default=600, gt=0)
    quiet_notice_s: float = Field(default=120, gt=0)
    max_image_mb: float = Field(default=20, gt=0)
    max_video_mb: float = Field(default=500, gt=0)
    max_audio_mb: float = Field(default=100, gt=0)
    allow_private_downloads: bool = False
    backend_max_connections: int = Field(default=1000, ge=1)

    # State
    redis_url: SecretUrl | None = None
    redis_namespace: str = "nemobot"
    idle_chat_ttl_days: float = Field(default=30, gt=0)
    lock_ttl_s: float = Field(default=60, gt=0)
    redis_max_connections: int = Field(default=64, ge=1)
    sweep_interval_s: float = Field(default=5, gt=0)

    # Operations
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
    download_dir: Path = Path("downloads")
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_listen: str = "127.0.0.1"

    @field_validator("allowed_user_ids", "allowed_chat_ids", "admin_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accept `1,2,3` (or spaces) as operators write it in `.env`."""
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("nemo_api_base", "telegram_api_base", "telegram_file_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretUrl | None) -> SecretUrl | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    def secret_values(self) -> list[str]:
        """Every secret set here, in the clear, for the log redactor to mask."""
        found = [
            secret.get_secret_value()
            for secret in (self.telegram_bot_token, self.webhook_secret, self.nemo_token)
            if secret is not None
        ]
        password = urlsplit(self.redis_url.get_secret_value()).password if self.redis_url else None
        return [value for value in (*found, password) if value]

    def upload_limits(self) -> UploadLimits:
        """The per-kind size caps (MB here, bytes for the client)."""
        return UploadLimits(
            image_bytes=int(self.max_image_mb * MIB),
            video_bytes=int(self.max_video_mb * MIB),
            audio_bytes=int(self.max_audio_mb * MIB),
        )


class SettingsError(Exception):
    """A setting has a wrong value; the message is one line naming the variable."""


def load_settings(**overrides: object) -> Settings:
    """Read the settings once; a wrong value becomes one clear `SettingsError` line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SettingsError(f"{name}: {first['msg']}") from None
