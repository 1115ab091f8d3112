package firmware_test

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/firmware"
)

// TestSigningKeys: a key edgebundle keygen writes (bundle.MarshalPrivateKey)
// is read by firmware.ParsePrivateKey, which mkimage sign uses, and the
// bundle and firmware packages name it alike; a public key is no signing
// key.
func TestSigningKeys(t *testing.T) {
	priv, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := bundle.MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	back, err := firmware.ParsePrivateKey(pemKey)
	if err != nil || !back.Equal(priv) {
		t.Fatalf("ParsePrivateKey: %v, equal %v", err, back.Equal(priv))
	}
	pub := priv.Public().(ed25519.PublicKey)
	if got, want := firmware.KeyID(pub), bundle.KeyID(pub); got != want || len(got) != 16 {
		t.Errorf("firmware.KeyID %q, bundle.KeyID %q", got, want)
	}
	_, err = firmware.ParsePrivateKey(bundle.MarshalPublicKey(pub))
	if err == nil || !strings.HasPrefix(err.Error(), "signing key: ") {
		t.Errorf("ParsePrivateKey(a public key): %v, want a signing key error", err)
	}
}
