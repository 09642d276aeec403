-- Run once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d):
-- one database per service, each owned by the role the services and `pinpoint migrate` use.
CREATE DATABASE registry;
CREATE DATABASE logbook;
CREATE DATABASE analytics;
