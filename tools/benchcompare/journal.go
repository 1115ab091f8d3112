package benchcompare

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"edgebroker/tools/loadgen"
)

// JournalUsage is what edgebroker's journal did during a durable run:
// the difference of its /metrics counters read at the start and at the
// end of the measured phase.
type JournalUsage struct {
	Seconds        float64 `json:"seconds"`  // between the two readings
	Messages       int64   `json:"messages"` // QoS 1 publishes acknowledged, each journaled first
	Fsyncs         int64   `json:"fsyncs"`
	WrittenBytes   int64   `json:"written_bytes"`
	CompactedBytes int64   `json:"compacted_bytes"`
	FsyncsPerSec   float64 `json:"fsyncs_per_sec"`
	BytesPerMsg    float64 `json:"written_bytes_per_message,omitempty"`
	// The journal's own commit latency (write and fdatasync) over its
	// last 1,024 commits, read at the end.
	CommitP50 float64 `json:"commit_p50_seconds"`
	CommitP99 float64 `json:"commit_p99_seconds"`
}

// journalReading is one reading of the journal's metrics.
type journalReading struct {
	at                         time.Time
	fsyncs, written, compacted float64
	commitP50, commitP99       float64
}

// The metrics a reading needs, by name.
var journalMetrics = []struct {
	name string
	dst  func(r *journalReading) *float64
}{
	{"edgebroker_journal_fsyncs_total", func(r *journalReading) *float64 { return &r.fsyncs }},
	{"edgebroker_journal_written_bytes_total", func(r *journalReading) *float64 { return &r.written }},
	{"edgebroker_journal_compacted_bytes_total", func(r *journalReading) *float64 { return &r.compacted }},
	{"edgebroker_journal_commit_p50_seconds", func(r *journalReading) *float64 { return &r.commitP50 }},
	{"edgebroker_journal_commit_p99_seconds", func(r *journalReading) *float64 { return &r.commitP99 }},
}

// since returns what happened between r0 and r, for the messages of res.
func (r journalReading) since(r0 journalReading, res *loadgen.Result) *JournalUsage {
	u := &JournalUsage{
		Seconds:        r.at.Sub(r0.at).Seconds(),
		Messages:       res.Acked,
		Fsyncs:         int64(r.fsyncs - r0.fsyncs),
		WrittenBytes:   int64(r.written - r0.written),
		CompactedBytes: int64(r.compacted - r0.compacted),
		CommitP50:      r.commitP50,
		CommitP99:      r.commitP99,
	}
	if u.Seconds > 0 {
		u.FsyncsPerSec = float64(u.Fsyncs) / u.Seconds
	}
	if u.Messages > 0 {
		u.BytesPerMsg = float64(u.WrittenBytes) / float64(u.Messages)
	}
	return u
}

// journalFromMetrics picks a reading out of parsed metrics.
func journalFromMetrics(m map[string]float64, at time.Time) (journalReading, error) {
	r := journalReading{at: at}
	for _, jm := range journalMetrics {
		v, ok := m[jm.name]
		if !ok {
			return r, fmt.Errorf("benchcompare: metrics lack %s (an edgebroker without the journal?)", jm.name)
		}
		*jm.dst(&r) = v
	}
	return r, nil
}

// readJournal fetches url (edgebroker's /metrics) and reads the journal.
func readJournal(ctx context.Context, url string) (journalReading, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return journalReading{}, err
	}
	at := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return journalReading{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return journalReading{}, fmt.Errorf("benchcompare: GET %s: %s", url, resp.Status)
	}
	m, err := parseMetrics(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return journalReading{}, fmt.Errorf("%s: %w", url, err)
	}
	return journalFromMetrics(m, at)
}

// parseMetrics reads the Prometheus text exposition format: one sample a
// line, `name value` or `name{label="v",...} value`, with an optional
// time stamp after the value; `#` lines are comments. The map's keys are
// the name with its labels as written.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	m := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, rest, err := cutSeriesName(line)
		if err != nil {
			return nil, fmt.Errorf("benchcompare: metrics line %d: %w", n, err)
		}
		fields := strings.Fields(rest)
		if len(fields) < 1 || len(fields) > 2 {
			return nil, fmt.Errorf("benchcompare: metrics line %d: %q: want a value and at most a time stamp", n, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("benchcompare: metrics line %d: %w", n, err)
		}
		m[key] = v
	}
	return m, sc.Err()
}

// cutSeriesName splits a sample line after its name and labels. Label
// values are quoted and may hold spaces, braces and escaped quotes.
func cutSeriesName(line string) (key, rest string, err error) {
	i := strings.IndexAny(line, "{ \t")
	switch {
	case i <= 0:
		return "", "", fmt.Errorf("%q: no value", line)
	case line[i] != '{':
		return line[:i], line[i:], nil
	}
	inQuote := false
	for j := i + 1; j < len(line); j++ {
		switch c := line[j]; {
		case inQuote && c == '\\':
			j++ // the escaped character
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return line[:j+1], line[j+1:], nil
		}
	}
	return "", "", errors.New("labels not closed")
}
