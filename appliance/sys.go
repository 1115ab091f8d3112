package appliance

import (
	"context"
	"runtime/debug"
	"strconv"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/packet"
)

// DefaultSysInterval is how often the $SYS topics are published, as
// mosquitto's sys_interval default.
const DefaultSysInterval = 10 * time.Second

// version is the build's version: the module version, else the VCS
// revision, else "devel".
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	return "devel"
}

// publishSys publishes mosquitto's $SYS/broker statistics as retained
// messages every interval until ctx ends, so dashboards made for
// mosquitto work. Who may read them is up to the port's authorization
// ($SYS/# must be granted explicitly).
func publishSys(ctx context.Context, srv *broker.Server, interval time.Duration, started time.Time) error {
	if interval <= 0 {
		interval = DefaultSysInterval
	}
	pub := func(topic, value string) {
		srv.Publish(&packet.Publish{Topic: []byte("$SYS/broker/" + topic), Payload: []byte(value), Retain: true})
	}
	pub("version", "edgebroker "+version())
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s := &srv.Stats
		pub("uptime", strconv.FormatInt(int64(time.Since(started)/time.Second), 10)+" seconds")
		pub("clients/connected", strconv.FormatInt(s.Connections.Load(), 10))
		pub("messages/received", u(s.MessagesReceived.Load()))
		pub("messages/sent", u(s.MessagesSent.Load()))
		pub("publish/messages/dropped", u(s.MessagesDropped.Load()))
		pub("bytes/received", u(s.BytesReceived.Load()))
		pub("bytes/sent", u(s.BytesSent.Load()))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
