package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressBar prints "done / total, rate, ETA" to stderr: one line redrawn
// in place on a terminal, a line every few seconds otherwise (logs, CI).
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	total int64
	start time.Time
	last  time.Time
	tty   bool
}

func newProgress(label string, total int64) *progressBar {
	tty := false
	if fi, err := os.Stderr.Stat(); err == nil {
		tty = fi.Mode()&os.ModeCharDevice != 0
	}
	return &progressBar{w: os.Stderr, label: label, total: total, start: time.Now(), tty: tty}
}

// SetTotal changes the total (when it becomes known or grows).
func (p *progressBar) SetTotal(total int64) {
	p.mu.Lock()
	p.total = total
	p.mu.Unlock()
}

// Update reports done so far; it draws at most every 200 ms on a terminal
// and every 5 s otherwise. Safe for concurrent use.
func (p *progressBar) Update(done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	every := 5 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	p.draw(done, false)
}

// Finish draws the final line.
func (p *progressBar) Finish(done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw(done, true)
}

func (p *progressBar) draw(done int64, final bool) {
	elapsed := time.Since(p.start)
	rate := float64(done) / max(elapsed.Seconds(), 1e-9)
	line := fmt.Sprintf("%s %d", p.label, done)
	if p.total > 0 {
		frac := min(float64(done)/float64(p.total), 1)
		const width = 30
		fill := int(frac * width)
		line = fmt.Sprintf("%s [%s%s] %5.1f%% %d/%d", p.label, strings.Repeat("#", fill), strings.Repeat("-", width-fill), frac*100, done, p.total)
		if !final && rate > 0 && done < p.total {
			line += fmt.Sprintf(" ETA %s", time.Duration(float64(p.total-done)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	line += fmt.Sprintf(" %.0f/s %s", rate, elapsed.Round(100*time.Millisecond))
	switch {
	case p.tty && final:
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	default:
		fmt.Fprintln(p.w, line)
	}
}
