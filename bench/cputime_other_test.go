//go:build !unix

package bench

import "time"

// processCPU is not measured on this platform; CPU figures print as zero.
func processCPU() time.Duration { return 0 }
