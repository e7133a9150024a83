-- One-minute resource figures per workspace, kept for a week (pruned by the
-- stats collector), for the Monitor tab's 24 h and 7 d views. Rates are
-- averages over the minute; memory and pids are the last reading.
CREATE TABLE stats_minutes (
    workspace_id  TEXT             NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    at            TIMESTAMPTZ      NOT NULL,
    cpu_pct       DOUBLE PRECISION NOT NULL,
    mem_used      BIGINT           NOT NULL,
    mem_limit     BIGINT           NOT NULL,
    net_rx_bps    DOUBLE PRECISION NOT NULL,
    net_tx_bps    DOUBLE PRECISION NOT NULL,
    blk_read_bps  DOUBLE PRECISION NOT NULL,
    blk_write_bps DOUBLE PRECISION NOT NULL,
    pids          BIGINT           NOT NULL,
    PRIMARY KEY (workspace_id, at)
);
-- Serves pruning by age.
CREATE INDEX stats_minutes_at ON stats_minutes (at);
