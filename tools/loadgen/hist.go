package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// histogram records durations in log-linear buckets: 64 sub-buckets per
// power of two, so a percentile is within 1.6% of the recorded value. It
// is owned by one goroutine; merge combines them at the end.
type histogram struct {
	counts [64 * 64]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const subBits = 6 // 64 sub-buckets

func bucketOf(d time.Duration) int {
	v := uint64(max(d, 0))
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - subBits // ≥ 1
	return e<<subBits | int(v>>(e-1)&(1<<subBits-1))
}

// bucketHigh is the largest value of bucket b.
func bucketHigh(b int) time.Duration {
	if b < 1<<subBits {
		return time.Duration(b)
	}
	e, m := b>>subBits, uint64(b&(1<<subBits-1))
	lo := (1<<subBits | m) << (e - 1)
	return time.Duration(lo + 1<<(e-1) - 1)
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value below which a fraction q of the samples lie
// (the upper edge of its bucket, capped by the maximum).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		if seen += c; seen >= rank {
			return min(bucketHigh(b), h.max)
		}
	}
	return h.max
}
