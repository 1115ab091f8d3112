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

// brokerState is the broker's durable state: opened and loaded before the
// broker exists, handed to it (Persister, Restore) before any port
// opens, and closed — which writes what is pending — after the broker
// stopped.
type brokerState struct {
	store    *brokerstate.Store
	retained []broker.StoredMessage
	sessions []broker.StoredSession
	log      *slog.Logger
}

// openBrokerState opens dataDir/brokerstate and loads what it holds.
func openBrokerState(dataDir string, log *slog.Logger) (*brokerState, error) {
	st, err := brokerstate.Open(filepath.Join(dataDir, BrokerStateDir), brokerstate.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("appliance: broker state: %w", err)
	}
	rs, ss, err := st.Load()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("appliance: broker state: %w", err)
	}
	return &brokerState{store: st, retained: rs, sessions: ss, log: log}, nil
}

// restore gives srv what was loaded. Call it before srv serves. Entries
// the broker finds invalid are logged and dropped; they do not stop the
// appliance.
func (bs *brokerState) restore(srv *broker.Server) {
	if err := srv.Restore(bs.retained, bs.sessions); err != nil {
		bs.log.Warn("broker state: dropped invalid entries", "err", err)
	}
	bs.log.Info("broker state restored", "retained", len(bs.retained), "sessions", len(bs.sessions))
	bs.retained, bs.sessions = nil, nil
}

// close writes what is pending and closes the store.
func (bs *brokerState) close() {
	if err := bs.store.Close(); err != nil {
		bs.log.Error("broker state close", "err", err)
	}
}
