-- Runtime queries about the connection itself (loaded by schema.named_queries.queries("session")).

-- name: backend_pid
-- The server process of this transaction: it changes between transactions of one connection only
-- behind a transaction-mode pooler (contentforge.pooler's session check).
SELECT pg_backend_pid() AS pid;
