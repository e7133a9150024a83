package components

import (
	"fmt"
	"strconv"
)

// Bytes formats a size in binary units, as memory limits are set (the
// resource figures of the monitor, fleet and list pages).
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// Rate formats bytes a second.
func Rate(bps float64) string {
	if bps < 0 {
		bps = 0
	}
	return Bytes(uint64(bps+0.5)) + "/s"
}

// Percent formats a percentage with one decimal below 10.
func Percent(p float64) string {
	if p < 10 {
		return strconv.FormatFloat(p, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 0, 64) + "%"
}

// Count formats a whole number.
func Count(n uint64) string { return strconv.FormatUint(n, 10) }

// CPUsHint says what 100% means for this container.
func CPUsHint(online int) string {
	if online <= 0 {
		return ""
	}
	if online == 1 {
		return "of 1 CPU"
	}
	return "of " + strconv.Itoa(online) + " CPUs (" + strconv.Itoa(100*online) + "% max)"
}

// PidsHint shows the pids limit, if any.
func PidsHint(limit uint64) string {
	if limit == 0 {
		return "no limit"
	}
	return "limit " + strconv.FormatUint(limit, 10)
}
