-- :name database_clock :scalar
-- :doc The server's clock now, as epoch seconds: the service maps its own clock onto it to
-- give the upsert a deadline in the server's time (service/store.py, DatabaseClock).
SELECT CAST(extract(epoch FROM clock_timestamp()) AS double precision)
