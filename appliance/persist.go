package appliance

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"edgebroker/broker"
	"edgebroker/statestore/brokerstate"
)

// BrokerStateDir is the folder under Config.DataDir that keeps the
// broker's retained messages and persistent sessions across restarts.
const BrokerStateDir = "brokerstate"

// brokerState is the broker's durable state: opened before the broker
// exists, streamed into it (Persister, Restorer) before any port opens,
// and closed — which writes what is pending — after the broker stopped.
type brokerState struct {
	store *brokerstate.Store
	log   *slog.Logger
}

// openBrokerState opens dataDir/brokerstate.
func openBrokerState(dataDir string, log *slog.Logger) (*brokerState, error) {
	st, err := brokerstate.Open(filepath.Join(dataDir, BrokerStateDir), brokerstate.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("appliance: broker state: %w", err)
	}
	return &brokerState{store: st, log: log}, nil
}

// maxRestoreErrors bounds the invalid entries logged one by one.
const maxRestoreErrors = 10

// restore streams what is stored into srv, one record at a time, within
// the broker's limits. Call it before srv serves. Entries the broker
// finds invalid are logged and dropped; what the memory budget leaves no
// room for stays stored and is logged as an error (it is not served
// until the budget grows). Neither stops the appliance: a device must
// not crash-loop because of what clients stored.
func (bs *brokerState) restore(srv *broker.Server) {
	r, err := srv.NewRestorer()
	if err != nil {
		bs.log.Error("broker state not restored", "err", err)
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
	err = bs.store.Each(func(m *broker.StoredMessage) { note(r.Retained(m)) },
		func(s *broker.StoredSession) { note(r.Session(s)) })
	if err != nil {
		bs.log.Error("broker state: restore stopped", "err", err)
	}
	if err := r.Err(); err != nil {
		bs.log.Error("broker state: over the memory budget: some stored state is not served", "err", err,
			"retained_skipped", r.SkippedRetained, "sessions_skipped", r.SkippedSessions, "queued_skipped", r.SkippedQueued)
	}
	bs.log.Info("broker state restored", "retained", r.RetainedLoaded, "sessions", r.SessionsLoaded, "invalid", invalid)
}

// close writes what is pending and closes the store.
func (bs *brokerState) close() {
	if err := bs.store.Close(); err != nil {
		bs.log.Error("broker state close", "err", err)
	}
}
