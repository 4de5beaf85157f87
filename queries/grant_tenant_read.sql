-- :name grant_tenant_read :scalar
-- :doc Create or reset the tenant's read-only login role (`m3w tenants grant-read`), with a
-- :doc SCRAM verifier as its password; returns the role's name. Needs CREATEROLE.
SELECT grant_tenant_read(:slug, :password_verifier)
