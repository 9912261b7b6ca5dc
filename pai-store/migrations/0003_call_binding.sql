-- The ModelBinding a call went through, if any. NULL for calls through none, and for every
-- call recorded before this column existed.
ALTER TABLE calls ADD COLUMN binding TEXT;
