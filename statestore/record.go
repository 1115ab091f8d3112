package statestore

import (
	"encoding/binary"
	"fmt"
)

// record is what the store keeps as the buntdb value of a key. buntdb's own
// TTLs have whole-second precision, so the PX deadline (absolute Unix ms) is
// part of the record and expiry is done by the store itself.
//
// Encoding: format byte (2), flags byte, [deadline int64 BE], version HLC,
// [fencing HLC], [owner: uvarint length, bytes], value bytes. An HLC is
// wall int64 BE, counter uint64 BE, uvarint node length, node bytes.
// Format 1 records (written before owners existed) are read too: they
// have no owner. Format 2 makes an older build refuse to open the store
// rather than read an owner as part of a value.
type record struct {
	Deadline int64 // Unix ms; 0 means no expiry
	Version  HLC
	Fencing  HLC    // zero means the key has no fencing token
	Owner    string // who wrote the value (quota accounting); "" none
	Value    []byte
}

const (
	recordFormat   = 2
	recordFormatV1 = 1 // no owner
	flagDeadline   = 1 << 0
	flagFencing    = 1 << 1
	flagOwner      = 1 << 2
)

func (r *record) expired(nowMillis int64) bool {
	return r.Deadline != 0 && nowMillis >= r.Deadline
}

func (r *record) append(b []byte) []byte {
	var flags byte
	if r.Deadline != 0 {
		flags |= flagDeadline
	}
	if !r.Fencing.IsZero() {
		flags |= flagFencing
	}
	if r.Owner != "" {
		flags |= flagOwner
	}
	b = append(b, recordFormat, flags)
	if r.Deadline != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(r.Deadline))
	}
	b = appendHLC(b, r.Version)
	if !r.Fencing.IsZero() {
		b = appendHLC(b, r.Fencing)
	}
	if r.Owner != "" {
		b = binary.AppendUvarint(b, uint64(len(r.Owner)))
		b = append(b, r.Owner...)
	}
	return append(b, r.Value...)
}

func appendHLC(b []byte, h HLC) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(h.Wall))
	b = binary.BigEndian.AppendUint64(b, h.Counter)
	b = binary.AppendUvarint(b, uint64(len(h.Node)))
	return append(b, h.Node...)
}

// decodeRecord parses b. The returned Value aliases b.
func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) < 2 || b[0] != recordFormat && b[0] != recordFormatV1 {
		return r, fmt.Errorf("%w: bad header", ErrCorruptRecord)
	}
	flags := b[1]
	if b[0] == recordFormatV1 && flags&flagOwner != 0 {
		return r, fmt.Errorf("%w: owner in a format 1 record", ErrCorruptRecord)
	}
	b = b[2:]
	if flags&flagDeadline != 0 {
		if len(b) < 8 {
			return r, fmt.Errorf("%w: short deadline", ErrCorruptRecord)
		}
		r.Deadline = int64(binary.BigEndian.Uint64(b))
		b = b[8:]
	}
	var err error
	if r.Version, b, err = decodeHLC(b); err != nil {
		return r, err
	}
	if flags&flagFencing != 0 {
		if r.Fencing, b, err = decodeHLC(b); err != nil {
			return r, err
		}
	}
	if flags&flagOwner != 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n || n == 0 {
			return r, fmt.Errorf("%w: bad owner", ErrCorruptRecord)
		}
		r.Owner = string(b[w : w+int(n)])
		b = b[w+int(n):]
	}
	r.Value = b
	return r, nil
}

func decodeHLC(b []byte) (HLC, []byte, error) {
	if len(b) < 16 {
		return HLC{}, nil, fmt.Errorf("%w: short HLC", ErrCorruptRecord)
	}
	h := HLC{Wall: int64(binary.BigEndian.Uint64(b)), Counter: binary.BigEndian.Uint64(b[8:])}
	n, w := binary.Uvarint(b[16:])
	if w <= 0 || uint64(len(b)-16-w) < n {
		return HLC{}, nil, fmt.Errorf("%w: bad HLC node", ErrCorruptRecord)
	}
	b = b[16+w:]
	h.Node = string(b[:n])
	return h, b[n:], nil
}
