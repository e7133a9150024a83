-- One-minute resource figures per workspace, kept for a week (pruned by the
-- stats collector), for the Monitor tab's 24 h and 7 d views. Rates are
-- averages over the minute; memory and pids are the last reading.
CREATE TABLE stats_minutes (
    workspace_id  TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    at            TEXT    NOT NULL,
    cpu_pct       REAL    NOT NULL,
    mem_used      INTEGER NOT NULL,
    mem_limit     INTEGER NOT NULL,
    net_rx_bps    REAL    NOT NULL,
    net_tx_bps    REAL    NOT NULL,
    blk_read_bps  REAL    NOT NULL,
    blk_write_bps REAL    NOT NULL,
    pids          INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, at)
);
-- Serves pruning by age.
CREATE INDEX stats_minutes_at ON stats_minutes (at);
