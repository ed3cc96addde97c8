// Package report holds the small formatting helpers that the benchmark
// tools (bench/memory, bench/snapshotlat and bench/watchlat) share when
// they write their markdown reports, and Save, which writes one.
package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Round rounds d for a report: to 100 ms from 10 s up, to 10 ms from 1 s
// up, and to 100 µs below that.
func Round(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(100 * time.Microsecond).String()
	}
}

// ByteCount is any integer type that a size in bytes comes in.
type ByteCount interface{ ~int | ~int64 | ~uint64 }

// KiB formats n bytes in kibibytes with one decimal, like "12.3 KiB".
func KiB[N ByteCount](n N) string { return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10)) }

// MiB formats n bytes in mebibytes with one decimal, like "12.3 MiB".
func MiB[N ByteCount](n N) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// MetOrMissed is "met" when a target was reached and "**missed**" (bold in
// markdown) when it was not.
func MetOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// LoadAverage is the 1, 5 and 15 minute load averages from /proc/loadavg,
// like "0.52 0.31 0.20", or "?" where they cannot be read.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Save prints text, writes it to the file out (making its folder), and
// says so on stderr with the tool's name; a failure to write is reported
// and exits with status 1, as a failed measurement does.
func Save(tool, text, out string) {
	fmt.Print(text)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, tool+":", err)
		os.Exit(1)
	}
	if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, tool+":", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, tool+": written to", out)
}
