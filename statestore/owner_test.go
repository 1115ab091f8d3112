package statestore

import (
	"errors"
	"testing"
	"time"
)

func wantUsage(t *testing.T, s *Store, owner string, keys int, bytes int64) {
	t.Helper()
	if k, b := s.OwnerUsage(owner); k != keys || b != bytes {
		t.Errorf("OwnerUsage(%q) = %d keys, %d bytes; want %d, %d", owner, k, b, keys, bytes)
	}
}

// TestOwnerQuota: one owner at its quota gets ErrOwnerQuotaExceeded (an
// ErrQuotaExceeded) while another still writes; a key is charged to its
// last writer; deletes and expiry free their owner's share; usage
// survives a reopen.
func TestOwnerQuota(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	opts := Options{MaxKeys: 100, MaxBytes: 1000, MaxKeysPerOwner: 2, MaxBytesPerOwner: 20, Now: clk.Now}
	s := openTest(t, dir, opts)
	a, b := SetOptions{Owner: "alice"}, SetOptions{Owner: "bob"}
	mustSet(t, s, "a1", "x", a)
	mustSet(t, s, "a2", "x", a)
	_, err := s.Set([]byte("a3"), []byte("x"), a)
	if !errors.Is(err, ErrOwnerQuotaExceeded) || !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("alice's 3rd key: %v, want ErrOwnerQuotaExceeded", err)
	}
	wantMissing(t, s, "a3")
	mustSet(t, s, "b1", "x", b) // bob is not affected by alice's quota
	mustSet(t, s, "a1", "0123456789", a)
	if _, err := s.Set([]byte("a1"), []byte("01234567890123456789"), a); !errors.Is(err, ErrOwnerQuotaExceeded) {
		t.Errorf("alice over her bytes: %v, want ErrOwnerQuotaExceeded", err)
	}
	wantUsage(t, s, "alice", 2, 12+3)
	wantUsage(t, s, "bob", 1, 3)

	// bob overwrites one of alice's keys: it is his now.
	mustSet(t, s, "a2", "bob's", b)
	wantUsage(t, s, "alice", 1, 12)
	wantUsage(t, s, "bob", 2, 3+7)
	mustSet(t, s, "a3", "x", a) // alice has room again
	if _, err := s.Set([]byte("b2"), []byte("x"), b); !errors.Is(err, ErrOwnerQuotaExceeded) {
		t.Errorf("bob's 3rd key: %v, want ErrOwnerQuotaExceeded", err)
	}
	// Keys without an owner count toward the totals only.
	for _, k := range []string{"n1", "n2", "n3"} {
		mustSet(t, s, k, "x", SetOptions{})
	}
	// A delete frees the owner's share whoever deletes; so does expiry.
	if n, err := s.Del([]byte("a3"), nil); n != 1 || err != nil {
		t.Fatalf("Del a3: %d, %v", n, err)
	}
	mustSet(t, s, "b1", "x", SetOptions{Owner: "bob", PX: time.Second})
	clk.Advance(2 * time.Second)
	if err := s.Sweep(); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, s, "alice", 1, 12)
	wantUsage(t, s, "bob", 1, 7)
	if k, by := s.Usage(); k != 5 || by != 12+7+3*3 {
		t.Errorf("Usage: %d keys, %d bytes; want 5, %d", k, by, 12+7+3*3)
	}

	// The owner is part of the record: a reopened store knows it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, opts)
	wantUsage(t, s, "alice", 1, 12)
	wantUsage(t, s, "bob", 1, 7)
	wantGet(t, s, "a2", "bob's")
	mustSet(t, s, "b3", "x", b)
	if _, err := s.Set([]byte("b4"), []byte("x"), b); !errors.Is(err, ErrOwnerQuotaExceeded) {
		t.Errorf("bob's 3rd key after reopen: %v, want ErrOwnerQuotaExceeded", err)
	}
}

// TestOwnerQuotaWithinBatch: owners' quotas count the writes of the batch
// being committed, not only what is durable.
func TestOwnerQuotaWithinBatch(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{MaxKeysPerOwner: 3})
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			_, err := s.Set([]byte{'k', byte('a' + i)}, []byte("v"), SetOptions{Owner: "alice"})
			errs <- err
		}()
	}
	ok := 0
	for range 20 {
		if err := <-errs; err == nil {
			ok++
		} else if !errors.Is(err, ErrOwnerQuotaExceeded) {
			t.Errorf("Set: %v", err)
		}
	}
	if ok != 3 {
		t.Errorf("%d keys written, want 3", ok)
	}
	wantUsage(t, s, "alice", 3, 9)
}

// TestRecordOwnerRoundTrip: records with and without an owner decode to
// what was encoded; a truncated owner is corrupt.
func TestRecordOwnerRoundTrip(t *testing.T) {
	for _, r := range []record{
		{Version: HLC{Wall: 1, Counter: 2, Node: "n"}, Value: []byte("v")},
		{Version: HLC{Wall: 1, Node: "n"}, Owner: "alice", Value: []byte("v")},
		{Deadline: 5, Version: HLC{Wall: 1, Node: "n"}, Fencing: HLC{Wall: 3, Node: "f"}, Owner: "anonymous:1883", Value: nil},
	} {
		b := r.append(nil)
		got, err := decodeRecord(b)
		if err != nil || got.Owner != r.Owner || string(got.Value) != string(r.Value) || got.Version != r.Version ||
			got.Fencing != r.Fencing || got.Deadline != r.Deadline {
			t.Errorf("%+v: decoded %+v, %v", r, got, err)
		}
	}
	b := (&record{Version: HLC{Wall: 1, Node: "n"}, Owner: "alice"}).append(nil)
	if _, err := decodeRecord(b[:len(b)-2]); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("truncated owner: %v, want ErrCorruptRecord", err)
	}
	// A record written before owners existed (format 1) has none.
	v1 := (&record{Version: HLC{Wall: 1, Node: "n"}, Fencing: HLC{Wall: 2, Node: "f"}, Value: []byte("old")}).append(nil)
	v1[0] = recordFormatV1
	if r, err := decodeRecord(v1); err != nil || r.Owner != "" || string(r.Value) != "old" || r.Fencing.Wall != 2 {
		t.Errorf("format 1 record: %+v, %v", r, err)
	}
	b[0] = recordFormatV1
	if _, err := decodeRecord(b); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("format 1 record with an owner: %v, want ErrCorruptRecord", err)
	}
}
