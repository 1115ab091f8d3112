package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Quantity is a Kubernetes resource quantity of bytes: a number with an
// optional binary (Ki, Mi, Gi, Ti) or decimal (k, M, G, T) suffix, such as
// "256Mi", "1Gi" or "1.5G".
type Quantity string

var quantitySuffixes = []struct {
	s string
	m float64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

// Bytes parses q.
func (q Quantity) Bytes() (int64, error) {
	s, mult := string(q), 1.0
	for _, x := range quantitySuffixes {
		if strings.HasSuffix(s, x.s) {
			s, mult = strings.TrimSuffix(s, x.s), x.m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || s == "" || strings.ContainsAny(s, "eEinfINFxXpP+-") || v < 0 {
		return 0, fmt.Errorf("%q is not a quantity of bytes (want e.g. 256Mi or 1Gi)", string(q))
	}
	b := math.Round(v * mult)
	if b > 1<<62 {
		return 0, fmt.Errorf("%q is too large", string(q))
	}
	return int64(b), nil
}
