package statestore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tidwall/buntdb"
)

var benchValue = make([]byte, 64)

// runConcurrent runs b.N calls of fn spread over g goroutines and reports
// ops/s.
func runConcurrent(b *testing.B, g int, fn func(i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range g {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := fn(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkDurableSet measures acknowledged (fsynced) Sets through the
// group committer.
func BenchmarkDurableSet(b *testing.B) {
	for _, g := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("g=%d", g), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			runConcurrent(b, g, func(i int64) error {
				_, err := s.Set(fmt.Appendf(nil, "key-%d", i%10000), benchValue, SetOptions{})
				return err
			})
		})
	}
}

// BenchmarkFsyncPerWrite is the baseline: plain buntdb with SyncPolicy
// Always, one transaction and one fsync per write.
func BenchmarkFsyncPerWrite(b *testing.B) {
	for _, g := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("g=%d", g), func(b *testing.B) {
			db, err := buntdb.Open(filepath.Join(b.TempDir(), "baseline.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetConfig(buntdb.Config{SyncPolicy: buntdb.Always, AutoShrinkDisabled: true})
			runConcurrent(b, g, func(i int64) error {
				return db.Update(func(tx *buntdb.Tx) error {
					_, _, err := tx.Set(fmt.Sprintf("key-%d", i%10000), string(benchValue), nil)
					return err
				})
			})
		})
	}
}

func BenchmarkGet(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range 1000 {
		if _, err := s.Set(fmt.Appendf(nil, "key-%d", i), benchValue, SetOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	runConcurrent(b, 4, func(i int64) error {
		_, _, err := s.Get(fmt.Appendf(nil, "key-%d", i%1000))
		return err
	})
}

// BenchmarkBatchShape compares the two ways to group-commit a batch of 64
// writes on plain buntdb (SyncPolicy Never) followed by one fsync: one
// transaction holding all 64 (what the Store does: one write(2)), or 64
// transactions (64 write(2)s). Both are durable after the fsync because
// every transaction is appended to the same inode before it.
func BenchmarkBatchShape(b *testing.B) {
	for _, perOp := range []bool{false, true} {
		b.Run(fmt.Sprintf("txPerOp=%v", perOp), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "shape.db")
			db, err := buntdb.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetConfig(buntdb.Config{SyncPolicy: buntdb.Never, AutoShrinkDisabled: true})
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			set := func(tx *buntdb.Tx, i int) error {
				_, _, err := tx.Set(fmt.Sprintf("key-%d", i%10000), string(benchValue), nil)
				return err
			}
			const batch = 64
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				if perOp {
					for i := range batch {
						if err := db.Update(func(tx *buntdb.Tx) error { return set(tx, n*batch+i) }); err != nil {
							b.Fatal(err)
						}
					}
				} else if err := db.Update(func(tx *buntdb.Tx) error {
					for i := range batch {
						if err := set(tx, n*batch+i); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}
