package bundle

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// Verify checks that the bundle may be applied on a device: signed by a
// key in trust with a valid signature over the manifest, a serial above
// lastSerial (the last one the device applied), created no later than
// ClockSkew after now and not expired at now, meant for dev (nil dev skips
// this check, for host-side verification), and key changes that leave at
// least one trusted key. An untrusted key or a bad signature is the only
// error returned; otherwise every failed check is returned, joined.
func (b *Bundle) Verify(trust TrustSet, lastSerial uint64, now time.Time, dev *Device) error {
	m := &b.m
	pub := trust.Key(m.KeyID)
	if pub == nil {
		return fmt.Errorf("%w: signed by key %s, the device trusts %v", ErrUntrusted, m.KeyID, trust.IDs())
	}
	if !ed25519.Verify(pub, b.raw, b.sig) {
		return fmt.Errorf("%w: the manifest does not match its signature by key %s", ErrSignature, m.KeyID)
	}
	var errs []error
	if m.Serial > MaxSerial { // Open refuses it too
		errs = append(errs, fmt.Errorf("%w: serial %d is above %d (2^53), the largest a bundle may carry", ErrFormat, m.Serial, uint64(MaxSerial)))
	}
	if m.Serial <= lastSerial {
		errs = append(errs, fmt.Errorf("%w: serial %d is not above %d, the last one applied", ErrReplay, m.Serial, lastSerial))
	}
	if now.Add(ClockSkew).Before(m.Created) {
		errs = append(errs, fmt.Errorf("%w: created %s, the device's clock says %s", ErrNotYetValid, stamp(m.Created), stamp(now)))
	}
	if !now.Before(m.Expires) {
		errs = append(errs, fmt.Errorf("%w: expired %s, the device's clock says %s", ErrExpired, stamp(m.Expires), stamp(now)))
	}
	if dev != nil && !m.Device.Matches(*dev) {
		errs = append(errs, fmt.Errorf("%w: the bundle is for %s, this is %s", ErrDevice, m.Device, &Device{Serial: dev.Serial, Model: dev.Model}))
	}
	if len(m.Retire) > 0 && len(trust.Change(m.Enrol, m.Retire)) == 0 {
		errs = append(errs, fmt.Errorf("%w: retiring %v would leave no trusted key", ErrKeys, TrustSet(m.Retire).IDs()))
	}
	return errors.Join(errs...)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// KeyChange returns the keys the bundle enrols and retires.
func (b *Bundle) KeyChange() (enrol, retire []ed25519.PublicKey) { return b.m.Enrol, b.m.Retire }
