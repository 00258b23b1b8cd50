"""Configuration, read once by the entry points from ``SDNC_*`` environment variables.

Domain code never reads settings; the composition root passes plain values down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from controller.logs import LogFormat

MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SDNC_", extra="ignore")

    # Where the embedded SQLite database lives when no database URL is configured.
    data_dir: Path = Path(".sdnc")
    # postgresql+psycopg://user@host/db selects PostgreSQL; empty means embedded SQLite.
    database_url: str = ""
    database_pool_size: int = Field(default=20, ge=1)
    # How long one request waits for the database in all (getting a connection, every
    # statement, the retries of its transaction) before it is answered 503, in seconds. On
    # SQLite this is also how long a writer waits for the write lock.
    database_timeout: float = Field(default=5.0, gt=0, le=600)
    # How long getting one connection may take (a free one from the pool, or a new one
    # opened), within the above, in seconds.
    database_connect_timeout: float = Field(default=2.0, gt=0, le=600)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Request bodies above this are refused with 413.
    max_body_bytes: int = Field(default=4 * MIB, ge=1024)
    # JSON nested deeper than this is refused with 400 (real NC payloads are about 8 deep).
    max_json_depth: int = Field(default=64, ge=8, le=512)
    log_level: str = "info"
    # text: one line per record, for a terminal; json: one JSON object per line, with the
    # request id and resource path of the request that caused it (controller/logs.py).
    log_format: LogFormat = "text"
    # The HTTP server's own defences (controller/api/connection.py). A request's line and
    # headers must arrive within http_header_timeout seconds of the connection (or of the
    # request's first byte on a kept-alive connection), its body within http_body_timeout of
    # the headers: total deadlines, not idle timers, so trickling bytes does not extend them.
    http_header_timeout: float = Field(default=10.0, gt=0, le=300)
    http_body_timeout: float = Field(default=30.0, gt=0, le=600)
    # Refused with 414 / 431: a request target over http_max_url_bytes, one header field
    # (name and value) over http_max_header_bytes, more than http_max_headers fields, or a
    # request line and headers together over http_max_head_bytes.
    http_max_url_bytes: int = Field(default=8 * 1024, ge=1024, le=1024 * 1024)
    http_max_header_bytes: int = Field(default=8 * 1024, ge=1024, le=1024 * 1024)
    http_max_headers: int = Field(default=100, ge=16, le=10_000)
    http_max_head_bytes: int = Field(default=32 * 1024, ge=4096, le=4 * MIB)
    # Open connections (HTTP and agent WebSockets) in all, and from one client address (0: no
    # per-address cap). The total is also kept below the open-files limit.
    http_max_connections: int = Field(default=10_000, ge=16)
    http_max_connections_per_address: int = Field(default=256, ge=0)
    # How often a replica re-reads the change log even without a notification (seconds).
    change_poll_interval: float = Field(default=1.0, gt=0, le=60)
    # How often agents with nothing to apply are told the revision they are complete up to
    # (a bookmark they acknowledge, so their applied revision keeps up), in seconds.
    bookmark_interval: float = Field(default=5.0, gt=0, le=300)
    # VxLAN VNIs (VSIDs) handed to virtual subnets; 24 bits, the first 4096 left to the fabric.
    vsid_min: int = Field(default=4096, ge=1, le=16_777_214)
    vsid_max: int = Field(default=16_777_214, ge=1, le=16_777_214)

    @field_validator("log_format", mode="before")
    @classmethod
    def _any_casing(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _vsid_range(self) -> Self:
        if self.vsid_min > self.vsid_max:
            raise ValueError("SDNC_VSID_MIN must not be above SDNC_VSID_MAX")
        return self

    @model_validator(mode="after")
    def _head_holds_its_parts(self) -> Self:
        if self.http_max_head_bytes < max(self.http_max_url_bytes, self.http_max_header_bytes):
            raise ValueError(
                "SDNC_HTTP_MAX_HEAD_BYTES must be at least SDNC_HTTP_MAX_URL_BYTES and "
                "SDNC_HTTP_MAX_HEADER_BYTES"
            )
        return self

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'controller.db').resolve()}"

    def ensure_data_dir(self) -> None:
        if not self.database_url:
            self.data_dir.mkdir(parents=True, exist_ok=True)
