package appliance

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"

	"edgebroker/appliance/config"
	"edgebroker/broker"
)

// brokerLimits applies a Broker resource's limits (spec.advanced.clients
// and spec.appliance) on top of base; unset fields keep base. The
// keep-alive cap is config.DefaultMaxKeepAliveSeconds unless base or
// the Broker sets one.
func brokerLimits(b *config.Broker, base broker.Limits) broker.Limits {
	l := base
	if l.MaxKeepAlive == 0 {
		l.MaxKeepAlive = config.DefaultMaxKeepAliveSeconds
	}
	if b == nil {
		return l
	}
	if a := b.Spec.Advanced; a != nil && a.Clients != nil {
		c := a.Clients
		setUint(&l.MaxSessionExpiry, c.MaxSessionExpirySeconds)
		setUint(&l.MaxMessageExpiry, c.MaxMessageExpirySeconds)
		setUint(&l.MaxPacketSize, c.MaxPacketSizeBytes)
		setUint(&l.MaxInflight, c.MaxReceiveMaximum)
		setUint(&l.MaxKeepAlive, c.MaxKeepAliveSeconds)
		if q := c.SubscriberQueueLimit; q != nil {
			setInt(&l.MaxQueued, q.Length)
			switch q.Strategy {
			case config.QueueNone:
				l.DropPolicy = broker.DropNewest
			case config.QueueDropOldest:
				l.DropPolicy = broker.DropOldest
			}
		}
	}
	if a := b.Spec.Appliance; a != nil {
		setInt(&l.MaxConnections, a.MaxConnections)
		setInt(&l.MaxPendingBytes, a.MaxPendingBytes)
		setInt(&l.MaxSubscriptions, a.MaxSubscriptions)
		setInt(&l.MaxTopicLength, a.MaxTopicLength)
		setInt(&l.MaxTopicLevels, a.MaxTopicLevels)
		setUint(&l.MaxTopicAliases, a.MaxTopicAliases)
		setInt(&l.MaxClientIDLength, a.MaxClientIDLength)
		if a.QueueQoS0 != nil {
			l.QueueQoS0 = *a.QueueQoS0
		}
		if d, err := a.ConnectTimeout.Value(); err == nil && d > 0 {
			l.ConnectTimeout = d
		}
		if d, err := a.WriteTimeout.Value(); err == nil && d > 0 {
			l.WriteTimeout = d
		}
		setInt(&l.MaxRetained, a.MaxRetained)
		setInt64(&l.MaxRetainedBytes, a.MaxRetainedBytes)
		setInt64(&l.MaxQueuedBytes, a.MaxQueuedBytes)
		setInt64(&l.MaxTotalQueuedBytes, a.MaxTotalQueuedBytes)
		setInt(&l.MaxSessions, a.MaxSessions)
		setInt(&l.MaxConnectSize, a.MaxConnectSize)
		setInt(&l.MaxConnecting, a.MaxConnecting)
		setInt64(&l.MaxReadBuffers, a.MaxReadBuffers)
		setInt64(&l.MaxSubscriptionBytes, a.MaxSubscriptionBytes)
		setInt64(&l.MaxTotalSubscriptionBytes, a.MaxTotalSubscriptionBytes)
		setInt64(&l.MaxTotalPendingBytes, a.MaxTotalPendingBytes)
	}
	return l
}

func setInt64(dst *int64, v *int) {
	if v != nil {
		*dst = int64(*v)
	}
}

func setInt(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

// setUint sets an unsigned limit from a validated (in range) value.
func setUint[T uint16 | uint32](dst *T, v *int) {
	if v != nil {
		*dst = T(*v)
	}
}

// withMemoryBudget sets l's memory budget, from which the broker derives
// every budget limit l leaves zero: the Broker resource's
// spec.appliance.memoryBudget, else its spec.memoryProfile's share of the
// device's memory (MemTotal in root/proc/meminfo; Medium, a quarter, by
// default). A budget already in l (Config.Limits) stays when the
// resource sets neither. If the device's memory cannot be read, the
// broker's default budget (that of a 1 GB device) applies.
func withMemoryBudget(l broker.Limits, b *config.Broker, root string, log *slog.Logger) broker.Limits {
	if l.MemoryBudget > 0 && (b == nil || b.Spec.MemoryProfile == "" && (b.Spec.Appliance == nil || b.Spec.Appliance.MemoryBudget == "")) {
		return l
	}
	total, err := memTotal(root)
	if err != nil {
		log.Warn("memory budget: device memory unknown: using the default budget", "err", err, "budget", broker.DefaultMemoryBudget)
		total = 4 * broker.DefaultMemoryBudget
	}
	l.MemoryBudget = b.MemoryBudget(total)
	log.Info("memory budget", "bytes", l.MemoryBudget, "device_memory", total)
	return l
}

// memTotal returns MemTotal from root/proc/meminfo ("" root: "/"), in
// bytes.
func memTotal(root string) (int64, error) {
	if root == "" {
		root = "/"
	}
	f, err := os.Open(filepath.Join(root, "proc", "meminfo"))
	if err != nil {
		return 0, fmt.Errorf("appliance: meminfo: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f) // lines are short; a longer one ends the scan
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("MemTotal:"))
		if !ok {
			continue
		}
		num, unit, _ := bytes.Cut(bytes.TrimSpace(rest), []byte(" "))
		kb, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil || kb <= 0 || string(unit) != "kB" || kb > 1<<40 {
			return 0, fmt.Errorf("appliance: meminfo: bad MemTotal line %q", sc.Bytes())
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("appliance: meminfo: %w", err)
	}
	return 0, fmt.Errorf("appliance: meminfo: no MemTotal line")
}

// setMemoryLimit makes 7/8 of the budget the Go runtime's soft memory
// limit (the rest is room for what the runtime does not manage, such as
// the binary's text), unless GOMEMLIMIT set one. Without it the collector
// lets the heap grow to twice what is live.
func setMemoryLimit(budget int64, log *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", v)
		return
	}
	limit := budget - budget/8
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "bytes", limit)
}
