-- R49: the console charts sent and failed per minute for every event sink.
-- Runtime webhook endpoints keep one row per attempt (`webhook_deliveries`);
-- the NATS sink and the webhooks of the configuration file keep only these
-- counters, one row per sink and minute (the minute's start, by the
-- database's clock), added to by the publisher after each pass and purged
-- after two hours by the chores.
CREATE TABLE sink_minutes (
    sink   text NOT NULL,
    minute timestamptz NOT NULL,
    sent   bigint NOT NULL DEFAULT 0 CHECK (sent >= 0),
    failed bigint NOT NULL DEFAULT 0 CHECK (failed >= 0),
    PRIMARY KEY (sink, minute)
);
CREATE INDEX sink_minutes_minute ON sink_minutes (minute);
