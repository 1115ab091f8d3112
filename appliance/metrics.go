package appliance

import (
	"fmt"
	"io"

	"edgebroker/broker/seclog"
)

// writeMetrics writes the appliance's figures in the Prometheus text
// exposition format.
func (a *Appliance) writeMetrics(w io.Writer) {
	st := a.Status()
	s := &a.srv.Stats
	metric := func(name, typ, help string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, typ, name, v)
	}
	metric("edgebroker_clients_connected", "gauge", "Connected MQTT clients.", s.Connections.Load())
	metric("edgebroker_messages_received_total", "counter", "PUBLISH packets received.", s.MessagesReceived.Load())
	metric("edgebroker_messages_sent_total", "counter", "PUBLISH packets sent.", s.MessagesSent.Load())
	metric("edgebroker_messages_dropped_total", "counter", "Messages dropped (queue limits, expiry).", s.MessagesDropped.Load())
	metric("edgebroker_bytes_received_total", "counter", "Bytes received from clients.", s.BytesReceived.Load())
	metric("edgebroker_bytes_sent_total", "counter", "Bytes sent to clients.", s.BytesSent.Load())
	metric("edgebroker_statestore_keys", "gauge", "Keys in the state store.", st.StateStore.Keys)
	metric("edgebroker_statestore_bytes", "gauge", "Bytes of keys and values in the state store.", st.StateStore.Bytes)
	fmt.Fprintf(w, "# HELP edgebroker_security_events_total Security events (failed authentication, denials, refusals by a limit), by kind.\n# TYPE edgebroker_security_events_total counter\n")
	sec := a.srv.Security()
	for e := seclog.Event(0); e < seclog.NumEvents; e++ {
		fmt.Fprintf(w, "edgebroker_security_events_total{event=%q} %d\n", e.String(), sec.Count(e))
	}
	fmt.Fprintf(w, "# HELP edgebroker_port_serving Whether a configured port accepts connections.\n# TYPE edgebroker_port_serving gauge\n")
	for _, p := range st.Ports {
		v := 0
		if p.Serving {
			v = 1
		}
		fmt.Fprintf(w, "edgebroker_port_serving{listener=%q,port=\"%d\"} %d\n", p.Listener, p.Port, v)
	}
	fmt.Fprintf(w, "# HELP edgebroker_certificate_not_after_seconds When a managed certificate expires (Unix time).\n# TYPE edgebroker_certificate_not_after_seconds gauge\n")
	for _, c := range st.Certificates {
		if !c.NotAfter.IsZero() {
			fmt.Fprintf(w, "edgebroker_certificate_not_after_seconds{secret=%q} %d\n", c.Secret, c.NotAfter.Unix())
		}
	}
}
