-- Consumer positions kept beside the effect they fed: a batch's rows and the next
-- offset to read commit together, so a redelivered message changes nothing.
CREATE TABLE consumer_positions (
    consumer     text NOT NULL,
    topic        text NOT NULL,
    partition    int NOT NULL,
    next_offset  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);
