-- What a mobile SDK said of the device and app a session runs on
-- (session.started.v1's device): NULL when it said nothing.
ALTER TABLE sessions ADD COLUMN device_model text, ADD COLUMN device_os text, ADD COLUMN app_version text;
