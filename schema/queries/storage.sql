-- Runtime queries of the storage sweep (contentforge.storage_sweep), by name.

-- name: output_keys_in_use
-- Of the listed output keys, those an asset row points at or a running attempt may still claim.
SELECT k AS key FROM app_private.output_keys_in_use(%(keys)s::text[]) AS k;
