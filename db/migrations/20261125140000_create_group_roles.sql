-- migrate:up
-- Least privilege: two group roles (NOLOGIN) hold exactly what each part of the stack needs.
-- The roles that log in are made members of one of them by the init step (db/init/, see
-- docs/deploy.md), which also gives them their passwords; the migration role owns the schema.
--   m3w_ingest      the service: write sessions, keep the rollups fresh. No DDL.
--   m3w_dashboards  Grafana: read sessions and rollups. Nothing else.
-- Roles belong to the whole cluster, not to this database: they may already exist (another
-- database of the same server, or db/init/roles.sql, which creates them before the first
-- migration where the migration role may not create roles), and the down block leaves them
-- for the same reason. Every later migration that adds an object grants it to these roles.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'm3w_ingest')
       OR NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'm3w_dashboards') THEN
        IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user)
        THEN
            -- In the message itself: dbmate does not show a HINT.
            RAISE EXCEPTION 'roles m3w_ingest and m3w_dashboards do not exist, and % may not '
                'create them: run db/init/roles.sql as an administrator first (docs/deploy.md)',
                current_user;
        END IF;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'm3w_ingest') THEN
        CREATE ROLE m3w_ingest NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'm3w_dashboards') THEN
        CREATE ROLE m3w_dashboards NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO m3w_ingest, m3w_dashboards;

-- The upsert reads the stored row (its WHERE on "timestamp"); its triggers mark hours dirty;
-- the refresh recomputes the dirty hours' rollups.
GRANT SELECT, INSERT, UPDATE ON sessions TO m3w_ingest;
GRANT SELECT, INSERT, DELETE ON qoe_rollup_dirty_hours, qoe_hourly_rollup,
    qoe_daily_breakdown_rollup TO m3w_ingest;

GRANT SELECT ON sessions, qoe_hourly_rollup, qoe_daily_breakdown_rollup, qoe_rollup_dirty_hours,
    qoe_hourly, qoe_daily_breakdown TO m3w_dashboards;

-- migrate:down
REVOKE ALL ON sessions, qoe_hourly_rollup, qoe_daily_breakdown_rollup, qoe_rollup_dirty_hours,
    qoe_hourly, qoe_daily_breakdown FROM m3w_ingest, m3w_dashboards;
REVOKE USAGE ON SCHEMA public FROM m3w_ingest, m3w_dashboards;
