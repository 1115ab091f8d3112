package bridge

// Handoffs is what the flow's two clients handed to another of their
// goroutines (remote.Status.Handoffs).
func (b *Bridge) Handoffs() uint64 { return b.local.Status().Handoffs + b.remote.Status().Handoffs }
