-- migrate:up
-- Read-only roles that see one tenant only (`m3w tenants grant-read SLUG`, docs/grafana.md
-- "One Grafana org per tenant"), by row-level security on `sessions`, every rollup and
-- `tenants`.
--
-- tenant_read_roles maps each such login role to its tenant. The policies let a role that is
-- in it see its tenant's rows only, and every other role (the service's m3w_ingest, Grafana's
-- m3w_dashboards, their members, anyone else granted the tables) every row, as before; the
-- owner of the tables (the migrations, `m3w` admin commands) is not subject to them at all.
-- Both subqueries are uncorrelated, so PostgreSQL runs them once per query, not per row.

CREATE TABLE tenant_read_roles (
    role_name name PRIMARY KEY,
    tenant_id integer NOT NULL REFERENCES tenants (id)
);
-- Every role evaluates the policies, which read this table.
GRANT SELECT ON tenant_read_roles TO PUBLIC;

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('sessions', 'tenant_id'), ('qoe_hourly_rollup', 'tenant_id'),
                                   ('qoe_hourly_breakdown_rollup', 'tenant_id'),
                                   ('qoe_daily_breakdown_rollup', 'tenant_id'),
                                   ('tenants', 'id')) AS v (tab, col) LOOP
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %1$I USING (%3$s) WITH CHECK (%3$s)',
            t.tab, t.col,
            format('NOT EXISTS (SELECT FROM tenant_read_roles AS m '
                   'WHERE m.role_name = current_user) '
                   'OR %I = (SELECT m.tenant_id FROM tenant_read_roles AS m '
                   'WHERE m.role_name = current_user)', t.col));
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t.tab);
    END LOOP;
END
$$;

-- A view reads its tables as the view's owner, who is not subject to the policies: these
-- views (read by the dashboard functions) must read them as the user who queries.
ALTER VIEW qoe_session_facts SET (security_invoker = true);
ALTER VIEW qoe_hourly SET (security_invoker = true);
ALTER VIEW qoe_daily_breakdown SET (security_invoker = true);

-- Creates (or resets) the login role `m3w_read_<slug>` of a tenant, with the given SCRAM
-- verifier as its password (computed by the client: the password never reaches the server,
-- nor its logs), read-only, allowed to SELECT what the dashboards read and nothing else.
-- Run by a role that may create roles (CREATEROLE), as `m3w tenants grant-read`.
CREATE FUNCTION grant_tenant_read(slug text, password_verifier text) RETURNS name
LANGUAGE plpgsql AS $$
DECLARE
    tenant integer;
    role name;
BEGIN
    SELECT t.id INTO tenant FROM tenants AS t WHERE t.slug = grant_tenant_read.slug;
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant %', slug USING ERRCODE = 'no_data_found';
    END IF;
    IF password_verifier NOT LIKE 'SCRAM-SHA-256$%' THEN
        RAISE EXCEPTION 'the password must be a SCRAM-SHA-256 verifier';
    END IF;
    role := 'm3w_read_' || replace(slug, '-', '_');
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = role)
       AND NOT EXISTS (SELECT FROM tenant_read_roles AS m WHERE m.role_name = role) THEN
        -- not ours: never turn an unrelated role into a tenant reader
        RAISE EXCEPTION 'role % exists and is not a tenant read role', role;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role) THEN
        EXECUTE format('CREATE ROLE %I', role);
    END IF;
    EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
                   'NOBYPASSRLS NOINHERIT PASSWORD %L', role, password_verifier);
    EXECUTE format('ALTER ROLE %I SET default_transaction_read_only = on', role);
    INSERT INTO tenant_read_roles (role_name, tenant_id) VALUES (role, tenant)
    ON CONFLICT (role_name) DO UPDATE SET tenant_id = EXCLUDED.tenant_id;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', role);
    EXECUTE format('GRANT SELECT ON sessions, tenants, qoe_hourly_rollup, '
                   'qoe_hourly_breakdown_rollup, qoe_daily_breakdown_rollup, '
                   'qoe_rollup_dirty_hours, qoe_session_facts, qoe_hourly, '
                   'qoe_daily_breakdown TO %I', role);
    RETURN role;
END
$$;
REVOKE ALL ON FUNCTION grant_tenant_read(text, text) FROM PUBLIC;

-- migrate:down
DROP FUNCTION grant_tenant_read(text, text);
ALTER VIEW qoe_session_facts RESET (security_invoker);
ALTER VIEW qoe_hourly RESET (security_invoker);
ALTER VIEW qoe_daily_breakdown RESET (security_invoker);
DO $$
DECLARE
    tab text;
    r record;
BEGIN
    FOREACH tab IN ARRAY ARRAY['sessions', 'qoe_hourly_rollup', 'qoe_hourly_breakdown_rollup',
                               'qoe_daily_breakdown_rollup', 'tenants'] LOOP
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', tab);
        EXECUTE format('DROP POLICY tenant_isolation ON %I', tab);
    END LOOP;
    -- The read roles lose every privilege on this database (roles are cluster-wide, and may
    -- own nothing here, so they are left for an administrator to drop).
    FOR r IN SELECT role_name FROM tenant_read_roles LOOP
        EXECUTE format('REVOKE ALL ON sessions, tenants, qoe_hourly_rollup, '
                       'qoe_hourly_breakdown_rollup, qoe_daily_breakdown_rollup, '
                       'qoe_rollup_dirty_hours, qoe_session_facts, qoe_hourly, '
                       'qoe_daily_breakdown FROM %I', r.role_name);
        EXECUTE format('REVOKE ALL ON SCHEMA public FROM %I', r.role_name);
        EXECUTE format('REVOKE ALL ON DATABASE %I FROM %I', current_database(), r.role_name);
        EXECUTE format('ALTER ROLE %I NOLOGIN', r.role_name);
    END LOOP;
END
$$;
DROP TABLE tenant_read_roles;
