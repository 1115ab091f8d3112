package update

import (
	"crypto/ed25519"
	"io"

	"edgebroker/provisioning/firmware"
)

// Sign fills m's Root and Boot from p and returns the header of the
// signed update (see provisioning/firmware); the update file is the
// header, then p.Root, then p.Boot (WriteUpdate).
func (p *Parts) Sign(m firmware.Manifest, key ed25519.PrivateKey) ([]byte, error) {
	m.Root, m.Boot = firmware.PartOf(p.Root), firmware.PartOf(p.Boot)
	return firmware.Sign(m, key)
}

// WriteUpdate writes the update file: header, root, boot.
func (p *Parts) WriteUpdate(w io.Writer, header []byte) error {
	for _, b := range [][]byte{header, p.Root, p.Boot} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
