package store

import (
	"context"
	"fmt"
	"time"
)

// StatsPoint is one minute of a workspace's resource use.
type StatsPoint struct {
	WorkspaceID string
	// At is the start of the minute (UTC, whole minutes).
	At          time.Time
	CPUPercent  float64 // 100 = one full CPU, averaged over the minute
	MemUsed     int64   // bytes, page cache excluded
	MemLimit    int64   // bytes
	NetRxBps    float64 // bytes a second, averaged over the minute
	NetTxBps    float64
	BlkReadBps  float64
	BlkWriteBps float64
	Pids        int64
}

// MaxStatsPoints bounds one StatsPoints read: a week of minutes.
const MaxStatsPoints = 7 * 24 * 60

// SaveStatsPoints stores points; a point for a minute already stored
// replaces it (a collector that restarts mid-minute does not fail).
func (s *sqlStore) SaveStatsPoints(ctx context.Context, points []StatsPoint) error {
	const op = "save stats points"
	if len(points) == 0 {
		return nil
	}
	return s.Tx(ctx, func(tx Store) error {
		ts := tx.(*sqlStore)
		for _, p := range points {
			if p.WorkspaceID == "" || p.At.IsZero() {
				return fmt.Errorf("%s: workspace and minute are required", op)
			}
			_, err := ts.exec(ctx, `INSERT INTO stats_minutes
				(workspace_id, at, cpu_pct, mem_used, mem_limit, net_rx_bps, net_tx_bps, blk_read_bps, blk_write_bps, pids)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (workspace_id, at) DO UPDATE SET
					cpu_pct = excluded.cpu_pct, mem_used = excluded.mem_used, mem_limit = excluded.mem_limit,
					net_rx_bps = excluded.net_rx_bps, net_tx_bps = excluded.net_tx_bps,
					blk_read_bps = excluded.blk_read_bps, blk_write_bps = excluded.blk_write_bps, pids = excluded.pids`,
				p.WorkspaceID, ts.ts(p.At.UTC().Truncate(time.Minute)), p.CPUPercent, p.MemUsed, p.MemLimit,
				p.NetRxBps, p.NetTxBps, p.BlkReadBps, p.BlkWriteBps, p.Pids)
			if err != nil {
				return ts.fail(op, err)
			}
		}
		return nil
	})
}

// StatsPoints returns a workspace's points from since on, oldest first,
// at most MaxStatsPoints (the newest of them).
func (s *sqlStore) StatsPoints(ctx context.Context, workspaceID string, since time.Time) ([]StatsPoint, error) {
	const op = "list stats points"
	rows, err := s.query(ctx, `SELECT workspace_id, at, cpu_pct, mem_used, mem_limit, net_rx_bps, net_tx_bps, blk_read_bps, blk_write_bps, pids
		FROM (SELECT * FROM stats_minutes WHERE workspace_id = ? AND at >= ? ORDER BY at DESC LIMIT ?) recent
		ORDER BY at`, workspaceID, s.ts(since), MaxStatsPoints)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []StatsPoint
	for rows.Next() {
		var p StatsPoint
		if err := rows.Scan(&p.WorkspaceID, timeCol{&p.At}, &p.CPUPercent, &p.MemUsed, &p.MemLimit,
			&p.NetRxBps, &p.NetTxBps, &p.BlkReadBps, &p.BlkWriteBps, &p.Pids); err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, p)
	}
	return out, s.fail(op, rows.Err())
}

// PruneStatsPoints deletes the points older than before.
func (s *sqlStore) PruneStatsPoints(ctx context.Context, before time.Time) (int64, error) {
	const op = "prune stats points"
	res, err := s.exec(ctx, `DELETE FROM stats_minutes WHERE at < ?`, s.ts(before))
	if err != nil {
		return 0, s.fail(op, err)
	}
	n, err := res.RowsAffected()
	return n, s.fail(op, err)
}
