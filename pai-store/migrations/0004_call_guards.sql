-- What each guard said about a call: a JSON array of {binding, verdict, enforcement, score,
-- category}. NULL for calls no guard ran on, and for every call recorded before this column.
ALTER TABLE calls ADD COLUMN guards TEXT;
