-- :name any_api_key :scalar
-- :doc Whether any API key was ever created (revoked and expired ones count): until then,
-- with no M3W_API_KEY set, the public default key `dev-key` is accepted.
SELECT EXISTS (SELECT FROM api_keys)
