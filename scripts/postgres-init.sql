-- The database and role the gateway container uses (docker-compose.yml).
CREATE ROLE bulkhead LOGIN PASSWORD 'bulkhead';
CREATE DATABASE bulkhead OWNER bulkhead;
