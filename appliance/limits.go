package appliance

import (
	"edgebroker/appliance/config"
	"edgebroker/broker"
)

// brokerLimits applies a Broker resource's limits (spec.advanced.clients
// and spec.appliance) on top of base; unset fields keep base.
func brokerLimits(b *config.Broker, base broker.Limits) broker.Limits {
	l := base
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
	}
	return l
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
