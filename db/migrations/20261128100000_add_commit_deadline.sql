-- migrate:up
-- The service writes each group of sessions in one statement of its own, committed as it
-- ends (autocommit: one round trip instead of BEGIN, statement and COMMIT; issue 11). Its
-- clients' deadline goes with the statement, and this check runs at the statement's end,
-- just before PostgreSQL commits it: a statement that arrives or ends too late (a frozen
-- network or server, a lock held until then) rolls back instead of storing sessions whose
-- clients were told to send them again (service/store.py). `commit_by` is in this server's
-- clock, as epoch seconds; the service maps its own clock onto it.
CREATE FUNCTION m3w_written_in_time(written bigint, commit_by double precision)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    IF extract(epoch FROM clock_timestamp()) >= commit_by THEN
        RAISE EXCEPTION 'media3watch: the service stopped waiting for this commit'
            USING ERRCODE = 'query_canceled';
    END IF;
    RETURN written;
END
$$;

REVOKE ALL ON FUNCTION m3w_written_in_time(bigint, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION m3w_written_in_time(bigint, double precision) TO m3w_ingest;

-- migrate:down
DROP FUNCTION m3w_written_in_time(bigint, double precision);
