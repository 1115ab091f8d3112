package appliance_test

import (
	"testing"

	"edgebroker/appliance/config"
	"edgebroker/provisioning/certs"
)

// TestMixedChainMessage: an Automatic port refused for a key of another
// family than its CA's (config.MixedChain) says what a Manual port's
// mixed chain is refused with.
func TestMixedChainMessage(t *testing.T) {
	if got, want := certs.ErrMixedAlgorithm.Error(), "certs: "+config.MixedChain; got != want {
		t.Errorf("Manual: %q; Automatic: %q", got, want)
	}
}
