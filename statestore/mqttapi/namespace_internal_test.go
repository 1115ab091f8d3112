package mqttapi

import (
	"testing"

	"edgebroker/broker"
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
