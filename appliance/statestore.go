package appliance

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"

	"edgebroker/appliance/config"
	"edgebroker/broker"
	"edgebroker/broker/auth"
	"edgebroker/statestore"
	"edgebroker/statestore/mqttapi"
)

// StateStoreDir is the state store's folder under Config.DataDir.
const StateStoreDir = "statestore"

// stateStore is the durable store and its MQTT service. The store is
// opened before the broker exists (its OnChange hook feeds the service
// once that is attached) and closed, which flushes it, after the broker
// stopped.
type stateStore struct {
	store *statestore.Store
	svc   atomic.Pointer[mqttapi.Service]
	quota config.StateStoreQuota // 0 fields: no limit; set by openStateStore
}

// openStateStore opens the store with quota; a zero quota limits nothing.
// The per-principal quotas apply to each client's principal (see
// mqttapi).
func openStateStore(dataDir string, quota config.StateStoreQuota, log *slog.Logger) (*stateStore, error) {
	ss := &stateStore{quota: quota}
	st, err := statestore.Open(filepath.Join(dataDir, StateStoreDir), statestore.Options{
		Logger:           log,
		MaxKeys:          quota.MaxKeys,
		MaxBytes:         quota.MaxBytes,
		MaxKeysPerOwner:  quota.MaxKeysPerPrincipal,
		MaxBytesPerOwner: quota.MaxBytesPerPrincipal,
		OnChange: func(ev statestore.Event) {
			if svc := ss.svc.Load(); svc != nil {
				svc.OnChange(ev)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("appliance: state store: %w", err)
	}
	if rec, note := st.Recovered(); rec {
		log.Warn("state store repaired at start", "detail", note)
	}
	ss.store = st
	return ss, nil
}

// attach serves the store on srv.
func (ss *stateStore) attach(srv *broker.Server, authorize func(*broker.Client, bool, []byte) bool, log *slog.Logger) error {
	svc := mqttapi.New(srv, ss.store, mqttapi.Options{Authorize: authorize, Logger: log})
	if err := svc.Start(); err != nil {
		return fmt.Errorf("appliance: state store: %w", err)
	}
	ss.svc.Store(svc)
	return nil
}

// clientGone is broker.Config.OnDisconnect.
func (ss *stateStore) clientGone(c *broker.Client) {
	if svc := ss.svc.Load(); svc != nil {
		svc.ClientGone(c)
	}
}

// close stops the service and closes (flushes) the store.
func (ss *stateStore) close() error {
	if svc := ss.svc.Swap(nil); svc != nil {
		svc.Stop()
	}
	return ss.store.Close()
}

// authorizeKey applies the stateStoreResources of the BrokerAuthorization
// that currently guards the client's port. A port without authorization
// (or a -listen port) allows every key.
func (a *Appliance) authorizeKey(c *broker.Client, write bool, key []byte) bool {
	var lp *livePort
	if m := a.ports.Load(); m != nil {
		lp = (*m)[c.Port]
	}
	if lp == nil {
		return true
	}
	cur := lp.authz.Load()
	if cur == nil {
		return true
	}
	az, ok := (*cur).(authorizer)
	if !ok {
		return false
	}
	method := auth.Read
	if write {
		method = auth.Write
	}
	return az.pol.For(&auth.Principal{ClientID: c.ID, Username: c.Username, Attributes: c.Attributes}).AllowKey(method, key)
}
