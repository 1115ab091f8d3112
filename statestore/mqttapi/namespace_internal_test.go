package mqttapi

import (
	"testing"

	"edgebroker/broker"
	"edgebroker/broker/seclog"
	"edgebroker/statestore"
)

// TestInOwnNamespace: only clients/ID/... and clients/HEX(ID)/... of the
// requester itself are its own namespace.
func TestInOwnNamespace(t *testing.T) {
	c := &broker.Client{ID: "my-app"}
	for _, tc := range []struct {
		topic string
		want  bool
	}{
		{"clients/my-app/response", true},
		{"clients/6D792D617070/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke/response", true},
		{"clients/6d792d617070/x", false}, // the SDKs' hex is upper case
		{"clients/my-app", false},
		{"clients/other/response", false},
		{"clients/my-app-2/response", false},
		{"clients//my-app/response", false},
		{"tenants/my-app/response", false},
		{"$SYS/clients/my-app/x", false},
	} {
		if got := inOwnNamespace(c, []byte(tc.topic)); got != tc.want {
			t.Errorf("inOwnNamespace(%q): got %v, want %v", tc.topic, got, tc.want)
		}
	}
}

// TestNotifyQueueBounded: change events for watched keys wait for the
// notifier in at most MaxNotifyQueueBytes; beyond that they are dropped
// and counted.
func TestNotifyQueueBounded(t *testing.T) {
	srv := broker.New(broker.Config{})
	s := New(srv, nil, Options{})
	s.started = true // no notifier runs: nothing drains the queue
	s.register(&broker.Client{ID: "w"}, []byte("k"))
	value := make([]byte, 1<<20)
	const events = 40
	for range events {
		s.OnChange(statestore.Event{Key: []byte("k"), Kind: statestore.EventSet, Value: value})
	}
	if s.queueBytes > MaxNotifyQueueBytes {
		t.Errorf("queued %d bytes, limit %d", s.queueBytes, MaxNotifyQueueBytes)
	}
	kept := len(s.queue)
	if got, want := srv.Security().Count(seclog.LimitQueue), uint64(events-kept); got != want || kept == events {
		t.Errorf("dropped events counted: got %d, want %d (kept %d of %d)", got, want, kept, events)
	}
}
