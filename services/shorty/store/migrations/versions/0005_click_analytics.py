"""Click analytics: raw clicks partitioned by month, hourly rollups, daily visitors.

Raw clicks live in one partition per calendar month (UTC), so retention drops a
whole partition instead of deleting rows. What the statistics read lives in
``click_rollups``: one row per link, hour, dimension value and bot flag, which
stays after the raw clicks are gone. ``click_visitors`` remembers which visitor
hashes a link has already seen on a day (the hash changes daily, so a day is
all it needs to remember).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from shorty.store.migrations.sql import run_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE clicks RENAME TO clicks_unpartitioned;
ALTER INDEX clicks_stream_id_key RENAME TO clicks_unpartitioned_stream_id_key;
ALTER INDEX clicks_url_time_idx RENAME TO clicks_unpartitioned_url_time_idx;

-- One row per followed redirect; no IP address is ever stored. The stream entry ID
-- is the identity: a redelivered entry carries the same ID and the same time, so it
-- lands in the same partition and conflicts there.
CREATE TABLE clicks (
    stream_id     text NOT NULL,
    url_id        bigint NOT NULL REFERENCES urls (id) ON DELETE CASCADE,
    occurred_at   timestamptz NOT NULL,
    referrer_host text CHECK (length(referrer_host) <= 255),
    user_agent    text CHECK (length(user_agent) <= 512),
    visitor_hash  text CHECK (length(visitor_hash) <= 64),
    is_bot        boolean NOT NULL DEFAULT false,
    browser       text CHECK (length(browser) <= 100),
    os            text CHECK (length(os) <= 100),
    device        text CHECK (length(device) <= 100),
    country       text CHECK (length(country) <= 2),
    PRIMARY KEY (stream_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX clicks_url_time_idx ON clicks (url_id, occurred_at);

-- The partition for the month holding ``at`` (UTC), created when missing.
CREATE FUNCTION shorty_click_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', at AT TIME ZONE 'UTC')::date;
    name text := 'clicks_' || to_char(month, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        BEGIN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF clicks FOR VALUES FROM (%L) TO (%L)',
                name,
                (month::timestamp AT TIME ZONE 'UTC'),
                ((month + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
        EXCEPTION WHEN duplicate_table THEN
            NULL;  -- another worker made it first
        END;
    END IF;
    RETURN name;
END
$$;

SELECT shorty_click_partition(m)
FROM (SELECT DISTINCT date_trunc('month', occurred_at, 'UTC') AS m FROM clicks_unpartitioned)
    AS months;
SELECT shorty_click_partition(now());

INSERT INTO clicks (stream_id, url_id, occurred_at, referrer_host, user_agent, visitor_hash,
                    is_bot)
SELECT stream_id, url_id, occurred_at, referrer_host, user_agent, visitor_hash, is_bot
FROM clicks_unpartitioned;
DROP TABLE clicks_unpartitioned;

-- dimension '' holds the totals; the others: referrer, country, browser, os, device.
-- visitors counts the visitors first seen that day in that hour, so a sum over
-- whole days is the number of distinct daily visitors.
-- No foreign key: checking one for every row upserted cost a quarter of the
-- upsert; the trigger below removes a deleted link's rollups instead. Byte-order
-- ("C") text compares cheapest, and nothing here is sorted for people.
CREATE TABLE click_rollups (
    url_id    bigint NOT NULL,
    hour      timestamptz NOT NULL,
    dimension text COLLATE "C" NOT NULL,
    value     text COLLATE "C" NOT NULL,
    is_bot    boolean NOT NULL,
    clicks    bigint NOT NULL,
    visitors  bigint NOT NULL,
    PRIMARY KEY (url_id, dimension, hour, value, is_bot)
);

CREATE TABLE click_visitors (
    url_id       bigint NOT NULL,
    day          date NOT NULL,
    visitor_hash text COLLATE "C" NOT NULL,
    PRIMARY KEY (day, url_id, visitor_hash)
);

CREATE FUNCTION shorty_forget_link_clicks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM click_rollups WHERE url_id = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER urls_forget_clicks AFTER DELETE ON urls
    FOR EACH ROW EXECUTE FUNCTION shorty_forget_link_clicks();

-- The clicks so far, rolled up the way the worker does it (browser, OS, device and
-- country were not recorded before, so only totals and referrers).
INSERT INTO click_rollups (url_id, hour, dimension, value, is_bot, clicks, visitors)
SELECT c.url_id, date_trunc('hour', c.occurred_at, 'UTC'), d.dimension, d.value, c.is_bot,
       count(*), count(*) FILTER (WHERE c.first_visit)
FROM (
    SELECT *, visitor_hash IS NOT NULL AND row_number() OVER (
        PARTITION BY url_id, (occurred_at AT TIME ZONE 'UTC')::date, visitor_hash
        ORDER BY occurred_at) = 1 AS first_visit
    FROM clicks
) AS c
CROSS JOIN LATERAL (VALUES ('', ''), ('referrer', coalesce(c.referrer_host, '')))
    AS d (dimension, value)
GROUP BY 1, 2, 3, 4, 5;

-- The visitors already counted today and yesterday, so their next click is not new.
INSERT INTO click_visitors (url_id, day, visitor_hash)
SELECT DISTINCT url_id, (occurred_at AT TIME ZONE 'UTC')::date, visitor_hash
FROM clicks
WHERE visitor_hash IS NOT NULL
  AND occurred_at >= date_trunc('day', now(), 'UTC') - interval '1 day';
"""

DOWNGRADE = """
DROP TRIGGER urls_forget_clicks ON urls;
DROP FUNCTION shorty_forget_link_clicks();
DROP TABLE click_visitors;
DROP TABLE click_rollups;
CREATE TABLE clicks_unpartitioned (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url_id        bigint NOT NULL REFERENCES urls (id) ON DELETE CASCADE,
    occurred_at   timestamptz NOT NULL,
    stream_id     text NOT NULL,
    referrer_host text CHECK (length(referrer_host) <= 255),
    user_agent    text CHECK (length(user_agent) <= 512),
    visitor_hash  text,
    is_bot        boolean NOT NULL DEFAULT false
);
INSERT INTO clicks_unpartitioned (url_id, occurred_at, stream_id, referrer_host, user_agent,
                                  visitor_hash, is_bot)
SELECT url_id, occurred_at, stream_id, referrer_host, user_agent, visitor_hash, is_bot
FROM clicks;
DROP TABLE clicks;
DROP FUNCTION shorty_click_partition(timestamptz);
ALTER TABLE clicks_unpartitioned RENAME TO clicks;
CREATE UNIQUE INDEX clicks_stream_id_key ON clicks (stream_id);
CREATE INDEX clicks_url_time_idx ON clicks (url_id, occurred_at);
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
