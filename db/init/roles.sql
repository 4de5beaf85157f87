-- The login roles of a Media3Watch database, run by an administrator (a superuser, or a role
-- with CREATEROLE that owns the database) BEFORE `m3w migrate`, connected to the database:
--
--   psql -v owner_password=... -v service_password=... -v grafana_password=... \
--        -h <host> -U postgres -d media3watch -f db/init/roles.sql
--
-- Safe to run again at any time (docker-compose.yml runs it at every `up`): it changes
-- passwords to the ones given and re-applies every setting. A SCRAM verifier
-- ('SCRAM-SHA-256$4096:...') is accepted in place of a password.
--
--   m3w_owner    runs the migrations and owns the schema and everything in it (no superuser)
--   m3w_service  the backend: member of m3w_ingest (sessions, rollup refresh); no DDL
--   m3w_grafana  the dashboards: member of m3w_dashboards, read-only by default
--
-- The group roles m3w_ingest and m3w_dashboards hold the table privileges; the migrations
-- grant them (db/migrations/20261125140000_create_group_roles.sql), so every table a later
-- migration adds reaches the service and Grafana without running this again.
-- Roles belong to the whole server: one Media3Watch database per PostgreSQL server.
\set ON_ERROR_STOP on
\set QUIET on
-- Quiet reruns: "role ... has already been granted membership" is not news.
SET client_min_messages = warning;

\if :{?owner_password}
\else
    \warn 'db/init/roles.sql: set the psql variable owner_password (psql -v owner_password=...)'
    DO $$ BEGIN RAISE EXCEPTION 'psql variable owner_password is not set'; END $$;
\endif
\if :{?service_password}
\else
    \warn 'db/init/roles.sql: set the psql variable service_password (psql -v service_password=...)'
    DO $$ BEGIN RAISE EXCEPTION 'psql variable service_password is not set'; END $$;
\endif
\if :{?grafana_password}
\else
    \warn 'db/init/roles.sql: set the psql variable grafana_password (psql -v grafana_password=...)'
    DO $$ BEGIN RAISE EXCEPTION 'psql variable grafana_password is not set'; END $$;
\endif

-- An empty password would lock the role out (PostgreSQL never accepts one); say so instead.
SELECT length(:'owner_password') = 0 OR length(:'service_password') = 0
    OR length(:'grafana_password') = 0 AS empty_password \gset
\if :empty_password
    DO $$ BEGIN RAISE EXCEPTION 'owner_password, service_password and grafana_password must not be empty'; END $$;
\endif

BEGIN;

SELECT format('CREATE ROLE %I NOLOGIN', name)
FROM unnest(ARRAY['m3w_ingest', 'm3w_dashboards']) AS name
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec

SELECT format('CREATE ROLE %I LOGIN', name)
FROM unnest(ARRAY['m3w_owner', 'm3w_service', 'm3w_grafana']) AS name
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec

-- Spelled out every time, so a role someone altered by hand is put back.
ALTER ROLE m3w_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
ALTER ROLE m3w_service LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    INHERIT PASSWORD :'service_password';
ALTER ROLE m3w_grafana LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    INHERIT PASSWORD :'grafana_password';
-- A query typed in Grafana's explorer cannot write even where a grant would let it.
ALTER ROLE m3w_grafana SET default_transaction_read_only = on;
GRANT m3w_ingest TO m3w_service;
GRANT m3w_dashboards TO m3w_grafana;

-- Only the three roles may connect; nobody may create temporary tables (PostgreSQL grants
-- both to PUBLIC by default). Superusers are not affected.
SELECT current_database() AS m3w_database \gset
REVOKE ALL ON DATABASE :"m3w_database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"m3w_database" TO m3w_owner, m3w_service, m3w_grafana;

-- The migration role owns the schema; nobody else may create anything in it (PostgreSQL
-- before 15 lets PUBLIC create in `public`).
ALTER SCHEMA public OWNER TO m3w_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- A database migrated before this step existed (by a superuser, say the old compose stack's
-- `m3w`): the migration role adopts every object of the schema, so later migrations can
-- alter them and grant them. Owned sequences follow their table; extension members stay.
SELECT format('ALTER %s %s OWNER TO m3w_owner',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                             WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END,
              c.oid::regclass)
FROM pg_class AS c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
  AND c.relowner <> 'm3w_owner'::regrole
  AND NOT EXISTS (
      SELECT FROM pg_depend AS d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
        AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i')))
  )
ORDER BY c.relkind = 'S', c.oid \gexec

SELECT format('ALTER ROUTINE %s OWNER TO m3w_owner', p.oid::regprocedure)
FROM pg_proc AS p
WHERE p.pronamespace = 'public'::regnamespace
  AND p.proowner <> 'm3w_owner'::regrole
  AND NOT EXISTS (
      SELECT FROM pg_depend AS d
      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  ) \gexec

-- Enums, domains and ranges; a table's row type follows its table, a multirange its range.
SELECT format('ALTER TYPE %s OWNER TO m3w_owner', t.oid::regtype)
FROM pg_type AS t
WHERE t.typnamespace = 'public'::regnamespace
  AND t.typtype IN ('e', 'd', 'r')
  AND t.typowner <> 'm3w_owner'::regrole
  AND NOT EXISTS (
      SELECT FROM pg_depend AS d
      WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e'
  ) \gexec

COMMIT;

\echo 'Media3Watch roles ready: m3w_owner (migrations), m3w_service (backend), m3w_grafana (read-only)'
