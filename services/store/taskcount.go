package store

import "context"

// CountActiveTasks counts queued and running tasks deployment-wide (the
// status index answers it without reading the table).
func (s *sqlStore) CountActiveTasks(ctx context.Context) (queued, running int, err error) {
	const op = "count active tasks"
	rows, err := s.query(ctx, `SELECT status, COUNT(*) FROM tasks WHERE status IN ('queued', 'running') GROUP BY status`)
	if err != nil {
		return 0, 0, s.fail(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var st TaskStatus
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return 0, 0, s.fail(op, err)
		}
		switch st {
		case TaskQueued:
			queued = n
		case TaskRunning:
			running = n
		}
	}
	return queued, running, s.fail(op, rows.Err())
}
