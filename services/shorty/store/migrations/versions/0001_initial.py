"""Initial schema: users, api_keys, urls, clicks, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from shorty.store.migrations.sql import run_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL CHECK (email = lower(email) AND length(email) <= 254),
    password_hash text,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    prefix       text NOT NULL,
    key_hash     text NOT NULL,
    scopes       text[] NOT NULL DEFAULT '{urls:read,urls:write,stats:read}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);
CREATE INDEX api_keys_prefix_idx ON api_keys (prefix);

CREATE TABLE urls (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code          text COLLATE "C" NOT NULL CHECK (length(code) BETWEEN 3 AND 64),
    target        text NOT NULL CHECK (length(target) <= 2048),
    owner_id      bigint REFERENCES users (id) ON DELETE CASCADE,
    title         text CHECK (length(title) <= 500),
    tags          text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    max_clicks    integer CHECK (max_clicks > 0),
    click_count   bigint NOT NULL DEFAULT 0 CHECK (click_count >= 0),
    redirect_type smallint NOT NULL DEFAULT 302 CHECK (redirect_type IN (301, 302, 307, 308)),
    disabled      boolean NOT NULL DEFAULT false,
    forward_query boolean NOT NULL DEFAULT false,
    source        text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'operator', 'import')),
    external_ref  text CHECK (length(external_ref) <= 512)
);
CREATE UNIQUE INDEX urls_code_key ON urls (code);
CREATE UNIQUE INDEX urls_external_ref_key ON urls (external_ref) WHERE external_ref IS NOT NULL;
CREATE INDEX urls_owner_created_idx ON urls (owner_id, created_at DESC, id DESC);
CREATE INDEX urls_expires_at_idx ON urls (expires_at) WHERE expires_at IS NOT NULL;

-- One row per followed redirect; no raw IP address is ever stored.
CREATE TABLE clicks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url_id        bigint NOT NULL REFERENCES urls (id) ON DELETE CASCADE,
    occurred_at   timestamptz NOT NULL,
    stream_id     text NOT NULL,
    referrer_host text CHECK (length(referrer_host) <= 255),
    user_agent    text CHECK (length(user_agent) <= 512),
    visitor_hash  text,
    is_bot        boolean NOT NULL DEFAULT false
);
-- Idempotent ingestion: a redelivered stream entry is not counted twice.
CREATE UNIQUE INDEX clicks_stream_id_key ON clicks (stream_id);
CREATE INDEX clicks_url_time_idx ON clicks (url_id, occurred_at);

-- Transactional outbox: written in the same transaction as the change it reports.
CREATE TABLE outbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    event_type     text NOT NULL,
    payload        jsonb NOT NULL,
    traceparent    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
"""

DOWNGRADE = """
DROP TABLE outbox;
DROP TABLE clicks;
DROP TABLE urls;
DROP TABLE api_keys;
DROP TABLE users;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
