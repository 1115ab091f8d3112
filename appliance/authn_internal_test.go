package appliance

import (
	"testing"

	"edgebroker/broker"
	"edgebroker/broker/packet"
)

// fakeReauth is a method that takes enhanced authentication; relevant
// false at re-authentication stands for an unreachable server.
type fakeReauth struct {
	fakeMethod
	again broker.AuthResult
	up    bool
}

func (m fakeReauth) reauthenticate(*broker.Client, *broker.AuthRequest) (broker.AuthResult, bool) {
	return m.again, m.up
}

// TestAuthenticatorEnhanced: a CONNECT with an Authentication Method that
// no method of the port takes is 0x8C, one the Custom-like method cannot
// decide 0x87; a re-authentication (Step > 0) asks only the methods that
// re-authenticate, and is Continue (AUTH 0x18) when none could decide.
func TestAuthenticatorEnhanced(t *testing.T) {
	ok := fakeMethod{broker.AuthResult{Code: packet.Success}, true}
	down := fakeReauth{}
	pass := fakeReauth{fakeMethod: ok, again: broker.AuthResult{Code: packet.Success}, up: true}
	refuse := fakeReauth{fakeMethod: ok, again: broker.AuthResult{Code: packet.BadUsernameOrPassword}, up: true}
	for _, tc := range []struct {
		name    string
		methods []authMethod
		step    int
		want    packet.Code
	}{
		{"connect: no method takes it", []authMethod{fakeMethod{}}, 0, packet.BadAuthenticationMethod},
		{"connect: custom unreachable", []authMethod{down}, 0, packet.NotAuthorized},
		{"connect: admitted", []authMethod{down, pass}, 0, packet.Success},
		{"reauth: only re-authenticating methods", []authMethod{ok}, 1, packet.NotAuthorized},
		{"reauth: unreachable", []authMethod{ok, down}, 1, packet.ContinueAuthentication},
		{"reauth: unreachable then admitted", []authMethod{down, pass}, 2, packet.Success},
		{"reauth: refused", []authMethod{down, refuse}, 1, packet.BadUsernameOrPassword},
	} {
		a := &authenticator{methods: tc.methods}
		if got := a.Authenticate(&broker.Client{}, &broker.AuthRequest{Method: "token", Step: tc.step}).Code; got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
