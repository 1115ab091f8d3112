package appliance

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/journal"
	"edgebroker/statestore/brokerstate"
)

// JournalDir is the folder under Config.DataDir of the broker's journal:
// retained messages, persistent sessions and the messages queued for
// them, each durable before it is acknowledged.
const JournalDir = "journal"

// BrokerStateDir is the folder under Config.DataDir where versions before
// the journal kept retained messages and sessions. It is imported into
// the journal once, then moved aside.
const BrokerStateDir = "brokerstate"

// brokerState is the broker's durable state: the journal, opened before
// the broker exists, streamed into it before any port opens, and closed
// after the broker stopped.
type brokerState struct {
	j   *journal.Journal
	log *slog.Logger
	dir string // the data directory
}

// openBrokerState opens dataDir/journal with a disk budget of maxBytes;
// its index may take a quarter of the memory budget (journal
// MaxDeliveries).
// A store of an earlier version still there means an import did not
// finish: the journal, which can only hold part of it, starts empty.
func openBrokerState(dataDir string, maxBytes, memoryBudget int64, log *slog.Logger) (*brokerState, error) {
	jdir := filepath.Join(dataDir, JournalDir)
	if _, err := os.Stat(filepath.Join(dataDir, BrokerStateDir)); err == nil {
		if err := os.RemoveAll(jdir); err != nil {
			return nil, fmt.Errorf("appliance: broker state: %w", err)
		}
	}
	opts := journal.Options{MaxBytes: maxBytes, Logger: log}
	if memoryBudget > 0 {
		opts.MaxDeliveries = int(memoryBudget / 4 / journal.IndexBytesPerDelivery)
	}
	j, err := journal.Open(jdir, opts)
	if err != nil {
		return nil, fmt.Errorf("appliance: broker state: %w", err)
	}
	return &brokerState{j: j, log: log, dir: dataDir}, nil
}

// maxRestoreErrors bounds the invalid entries logged one by one.
const maxRestoreErrors = 10

// restore loads the journal (or imports an earlier version's store) into
// srv, one record at a time, within the broker's limits. Call it before
// srv serves. Invalid entries are logged and dropped; what the memory
// budget leaves no room for stays on disk and is logged as an error.
// Neither stops the appliance: a device must not crash-loop because of
// what clients stored.
func (bs *brokerState) restore(srv *broker.Server) {
	legacy := filepath.Join(bs.dir, BrokerStateDir)
	if _, err := os.Stat(legacy); err == nil {
		bs.importLegacy(srv, legacy)
		return
	}
	r, err := srv.RestoreJournal()
	bs.report(r, err)
}

func (bs *brokerState) report(r *broker.Restorer, err error) {
	if r == nil {
		bs.log.Error("broker state not restored", "err", err)
		return
	}
	if errors.Is(err, broker.ErrOverBudget) {
		bs.log.Error("broker state: over the memory budget: some stored state is not served", "err", r.Err(),
			"retained_skipped", r.SkippedRetained, "sessions_skipped", r.SkippedSessions, "queued_skipped", r.SkippedQueued)
	} else if err != nil {
		bs.log.Warn("broker state: dropped invalid entries", "err", err)
	}
	rep := bs.j.Report(false)
	bs.log.Info("broker state restored", "retained", r.RetainedLoaded, "sessions", r.SessionsLoaded,
		"messages_on_disk", rep.Messages, "disk_live_bytes", rep.LiveBytes)
}

// importLegacy moves an earlier version's store into the journal: what it
// holds is restored (and so written to the journal), made durable, and
// only then is the old store moved aside (DIR.imported-UNIXTIME).
func (bs *brokerState) importLegacy(srv *broker.Server, dir string) {
	st, err := brokerstate.Open(dir, brokerstate.Options{Logger: bs.log})
	if err != nil {
		bs.log.Error("broker state: the earlier store does not open: kept, not imported", "dir", dir, "err", err)
		return
	}
	r, err := srv.NewRestorer()
	if err != nil {
		st.Close()
		bs.log.Error("broker state not imported", "err", err)
		return
	}
	invalid := 0
	note := func(err error) {
		if err != nil {
			if invalid++; invalid <= maxRestoreErrors {
				bs.log.Warn("broker state: dropped an invalid entry", "err", err)
			}
		}
	}
	err = st.Each(func(m *broker.StoredMessage) { note(r.Retained(m)) },
		func(s *broker.StoredSession) { note(r.Session(s)) })
	r.Finish()
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = bs.j.Wait(bs.j.Seq())
	}
	if err != nil {
		bs.log.Error("broker state: import stopped: the earlier store is kept and imported again at the next start", "err", err)
		return
	}
	// Kept aside, not deleted: what the memory budget left out of the
	// import is still there.
	aside := fmt.Sprintf("%s.imported-%d", dir, time.Now().Unix())
	if err := os.Rename(dir, aside); err != nil {
		bs.log.Error("broker state: move the imported store aside", "err", err)
	}
	bs.log.Info("broker state imported into the journal", "retained", r.RetainedLoaded, "sessions", r.SessionsLoaded,
		"invalid", invalid, "over_budget", r.Err(), "old_store", aside)
}

// close writes what is pending and closes the journal.
func (bs *brokerState) close() {
	if err := bs.j.Close(); err != nil {
		bs.log.Error("broker state close", "err", err)
	}
}
