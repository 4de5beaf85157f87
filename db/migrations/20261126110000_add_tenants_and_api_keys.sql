-- migrate:up
-- Tenants and their API keys (README: "Tenants and API keys"; docs/schema.md).
--
--   tenants   one per app (or per build: prod, staging) sharing this backend
--   api_keys  the keys a tenant's apps send in X-API-Key, stored only as their SHA-256:
--             the key itself is shown once by `m3w keys create` and never stored
--
-- Every session belongs to the tenant of the key that sent it, and its identity becomes
-- (tenant_id, session_id): two apps sending the same sessionId get two rows. Sessions
-- stored before this migration belong to the tenant `default`, created here, which is also
-- the tenant of M3W_API_KEY.
--
-- Not here yet: the tenant dimension of the dashboard rollups and row-level security (a
-- later migration, with the per-tenant dashboards).

CREATE TABLE tenants (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The name in CLI commands and the `tenant` label of the metrics.
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]{1,40}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO tenants (slug, name) VALUES ('default', 'Default');

-- Keys are 256-bit random tokens, so a fast unsalted hash is the right one: a slow KDF
-- protects guessable passwords, and would cost every uncached lookup milliseconds.
CREATE TABLE api_keys (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    integer NOT NULL REFERENCES tenants (id),
    name         text NOT NULL CHECK (length(name) <= 200),
    -- The key's first characters (m3w_ and 6 more), so `m3w keys list` shows which is which.
    prefix       text NOT NULL CHECK (length(prefix) BETWEEN 4 AND 16),
    key_hash     bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),  -- SHA-256 of the key
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    -- Written by the service at most once a minute per key, never per request.
    last_used_at timestamptz
);

CREATE INDEX api_keys_tenant_id_idx ON api_keys (tenant_id);

-- Every existing session goes to `default`. A constant default fills the column without
-- rewriting the table (PostgreSQL 11+); it is dropped at once, so a row written later
-- without a tenant is refused rather than filed under `default` by mistake.
DO $$
BEGIN
    EXECUTE format(
        'ALTER TABLE sessions ADD COLUMN tenant_id integer NOT NULL DEFAULT %s',
        (SELECT id FROM tenants WHERE slug = 'default'));
END
$$;
ALTER TABLE sessions ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE sessions ADD CONSTRAINT sessions_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id);

-- The session's identity: the upsert's conflict target (queries/upsert_sessions.sql).
ALTER TABLE sessions DROP CONSTRAINT sessions_pkey;
ALTER TABLE sessions ADD CONSTRAINT sessions_pkey PRIMARY KEY (tenant_id, session_id);

-- The service looks keys up and records their use; it cannot create, revoke or delete one
-- (`m3w keys` runs as the schema owner). Grafana may name tenants, never read keys.
GRANT SELECT ON tenants, api_keys TO m3w_ingest;
GRANT UPDATE (last_used_at) ON api_keys TO m3w_ingest;
GRANT SELECT ON tenants TO m3w_dashboards;

-- migrate:down
-- Refused while two tenants share a session id: one of the rows would have to go, and
-- choosing which is not a migration's job.
DO $$
BEGIN
    IF EXISTS (SELECT FROM sessions GROUP BY session_id HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'cannot roll back: several tenants have sessions with the same '
            'session_id, which would collide (delete the extra rows first)';
    END IF;
END
$$;
REVOKE ALL ON tenants, api_keys FROM m3w_ingest, m3w_dashboards;
ALTER TABLE sessions DROP CONSTRAINT sessions_pkey;
ALTER TABLE sessions ADD CONSTRAINT sessions_pkey PRIMARY KEY (session_id);
ALTER TABLE sessions DROP COLUMN tenant_id;
DROP TABLE api_keys;
DROP TABLE tenants;
