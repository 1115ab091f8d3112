package certs

import (
	"errors"
	"testing"
)

func TestKeySpecNormalize(t *testing.T) {
	for _, tt := range []struct {
		in      KeySpec
		want    KeySpec
		wantErr bool
	}{
		{in: KeySpec{}, want: KeySpec{ECDSA, 256}},
		{in: KeySpec{"Ec256", 0}, want: KeySpec{ECDSA, 256}},
		{in: KeySpec{"Ec384", 0}, want: KeySpec{ECDSA, 384}},
		{in: KeySpec{"Ec521", 0}, want: KeySpec{ECDSA, 521}},
		{in: KeySpec{"Ed25519", 0}, want: KeySpec{Ed25519, 0}},
		{in: KeySpec{"Rsa2048", 0}, want: KeySpec{RSA, 2048}},
		{in: KeySpec{"Rsa4096", 0}, want: KeySpec{RSA, 4096}},
		{in: KeySpec{"Rsa8192", 0}, want: KeySpec{RSA, 8192}},
		{in: KeySpec{"ECDSA", 0}, want: KeySpec{ECDSA, 256}},
		{in: KeySpec{"ECDSA", 384}, want: KeySpec{ECDSA, 384}},
		{in: KeySpec{"ECDSA", 521}, want: KeySpec{ECDSA, 521}},
		{in: KeySpec{"RSA", 0}, want: KeySpec{RSA, 2048}},
		{in: KeySpec{"RSA", 3072}, want: KeySpec{RSA, 3072}},
		{in: KeySpec{"RSA", 8192}, want: KeySpec{RSA, 8192}},
		{in: KeySpec{"ECDSA", 224}, wantErr: true},
		{in: KeySpec{"RSA", 1024}, wantErr: true},
		{in: KeySpec{"Ed25519", 256}, wantErr: true},
		{in: KeySpec{"Ec256", 384}, wantErr: true},
		{in: KeySpec{"DSA", 0}, wantErr: true},
		{in: KeySpec{"ec256", 0}, wantErr: true},
	} {
		got, err := tt.in.Normalize()
		if tt.wantErr {
			if !errors.Is(err, ErrKeySpec) {
				t.Errorf("Normalize(%v): got %v, %v; want ErrKeySpec", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%v): got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestKeySpecGenerate(t *testing.T) {
	// RSA 4096 and 8192 are left out: generating them takes seconds.
	for _, spec := range []KeySpec{{"Ec256", 0}, {"Ec384", 0}, {"Ec521", 0}, {"Ed25519", 0}, {"Rsa2048", 0}, {"ECDSA", 384}, {"RSA", 2048}} {
		t.Run(spec.String(), func(t *testing.T) {
			key, err := spec.Generate()
			if err != nil {
				t.Fatal(err)
			}
			if !spec.Matches(key.Public()) {
				t.Errorf("%v does not match its own key %T", spec, key)
			}
			pemKey, err := MarshalKey(key)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseKey(pemKey)
			if err != nil {
				t.Fatal(err)
			}
			if !publicKeyOf(back).Equal(key.Public()) {
				t.Error("ParseKey(MarshalKey(key)) is another key")
			}
		})
	}
}

func TestKeySpecMatches(t *testing.T) {
	key, err := KeySpec{"Ec256", 0}.Generate()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		spec KeySpec
		want bool
	}{
		{KeySpec{"Ec256", 0}, true},
		{KeySpec{"ECDSA", 256}, true},
		{KeySpec{}, true},
		{KeySpec{"Ec384", 0}, false},
		{KeySpec{"Rsa2048", 0}, false},
		{KeySpec{"Ed25519", 0}, false},
		{KeySpec{"bogus", 0}, false},
	} {
		if got := tt.spec.Matches(key.Public()); got != tt.want {
			t.Errorf("%v.Matches(P-256 key): got %v, want %v", tt.spec, got, tt.want)
		}
	}
}
