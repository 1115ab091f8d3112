package appliance

import (
	"fmt"
	"io"
	"maps"
	"slices"

	"edgebroker/broker/seclog"
	"edgebroker/provisioning/fwupdate"
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
	metric("edgebroker_messages_dropped_oldest_total", "counter", "Queued messages dropped oldest first to keep a dataflow within its share of the disk budget.", s.MessagesDroppedOldest.Load())
	metric("edgebroker_bytes_received_total", "counter", "Bytes received from clients.", s.BytesReceived.Load())
	metric("edgebroker_bytes_sent_total", "counter", "Bytes sent to clients.", s.BytesSent.Load())
	metric("edgebroker_statestore_keys", "gauge", "Keys in the state store.", st.StateStore.Keys)
	metric("edgebroker_statestore_bytes", "gauge", "Bytes of keys and values in the state store.", st.StateStore.Bytes)
	j := st.Journal
	metric("edgebroker_journal_messages", "gauge", "Messages held on disk for persistent sessions.", j.Messages)
	metric("edgebroker_journal_live_bytes", "gauge", "Bytes of live records in the journal.", j.LiveBytes)
	metric("edgebroker_journal_disk_bytes", "gauge", "Bytes of the journal's segment files.", j.DiskBytes)
	metric("edgebroker_journal_max_bytes", "gauge", "The journal's disk budget (diskBackedMessageBuffer.maxSize).", j.MaxBytes)
	metric("edgebroker_journal_written_bytes_total", "counter", "Bytes the broker appended to the journal.", j.BytesWritten)
	metric("edgebroker_journal_compacted_bytes_total", "counter", "Bytes compaction appended again.", j.BytesCompacted)
	metric("edgebroker_journal_fsyncs_total", "counter", "fdatasync calls of the journal.", j.Fsyncs)
	metric("edgebroker_journal_commit_p50_seconds", "gauge", "Median commit latency (write and fdatasync), last 1,024 commits.", j.CommitP50Ms/1e3)
	metric("edgebroker_journal_commit_p99_seconds", "gauge", "99th percentile commit latency, last 1,024 commits.", j.CommitP99Ms/1e3)
	metric("edgebroker_journal_refused_total", "counter", "Messages refused for lack of disk space or budget.", j.Refused)
	fmt.Fprintf(w, "# HELP edgebroker_journal_session_messages Messages on disk per persistent session.\n# TYPE edgebroker_journal_session_messages gauge\n")
	for _, id := range slices.Sorted(maps.Keys(j.PerSession)) {
		fmt.Fprintf(w, "edgebroker_journal_session_messages{client=%q} %d\n", id, j.PerSession[id].Messages)
	}
	fmt.Fprintf(w, "# HELP edgebroker_journal_session_bytes Bytes on disk per persistent session.\n# TYPE edgebroker_journal_session_bytes gauge\n")
	for _, id := range slices.Sorted(maps.Keys(j.PerSession)) {
		fmt.Fprintf(w, "edgebroker_journal_session_bytes{client=%q} %d\n", id, j.PerSession[id].Bytes)
	}
	writeDataflowMetrics(w, st.Dataflows)
	writeFirmwareMetrics(w, st.Firmware)
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

// writeDataflowMetrics writes each Dataflow's figures, labelled
// dataflow="NAME". Its last error's text is on the status page and in
// status.json only (text makes a poor label); /metrics has its time.
func writeDataflowMetrics(w io.Writer, flows []DataflowStatus) {
	family := func(name, typ, help string, v func(f *DataflowStatus) any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for i := range flows {
			f := &flows[i]
			if x := v(f); x != nil {
				fmt.Fprintf(w, "%s{dataflow=%q} %v\n", name, f.Name, x)
			}
		}
	}
	family("edgebroker_dataflow_connected", "gauge", "Whether a Dataflow is connected upstream.", func(f *DataflowStatus) any {
		return b2i(f.Connected != "")
	})
	fmt.Fprintf(w, "# HELP edgebroker_dataflow_upstream_info The upstream host a Dataflow is connected to, and the protocol.\n# TYPE edgebroker_dataflow_upstream_info gauge\n")
	for _, f := range flows {
		if f.Connected != "" {
			fmt.Fprintf(w, "edgebroker_dataflow_upstream_info{dataflow=%q,host=%q,protocol=%q} 1\n", f.Name, f.Connected, f.Protocol)
		}
	}
	family("edgebroker_dataflow_forwarded_total", "counter", "Messages a Dataflow forwarded (acknowledged by the destination).", func(f *DataflowStatus) any {
		return f.Forwarded
	})
	family("edgebroker_dataflow_forwarded_per_second", "gauge", "Messages a Dataflow forwarded per second, over the last 10 s.", func(f *DataflowStatus) any {
		return f.ForwardedPerSecond
	})
	family("edgebroker_dataflow_dropped_total", "counter", "Messages a Dataflow did not forward: no destination topic, came down, or a topic upstreams refuse.", func(f *DataflowStatus) any {
		return f.Dropped
	})
	family("edgebroker_dataflow_queued_messages", "gauge", "Messages a Dataflow up holds on disk, not yet acknowledged upstream.", func(f *DataflowStatus) any {
		return f.QueuedMessages
	})
	family("edgebroker_dataflow_queued_bytes", "gauge", "Bytes on disk of the messages a Dataflow up holds.", func(f *DataflowStatus) any {
		return f.QueuedBytes
	})
	family("edgebroker_dataflow_oldest_queued_seconds", "gauge", "How long the oldest message waiting for a Dataflow has waited (0: none waits).", func(f *DataflowStatus) any {
		return f.OldestQueuedSeconds
	})
	family("edgebroker_dataflow_last_error_timestamp_seconds", "gauge", "When a Dataflow last failed (Unix time); its text is in status.json.", func(f *DataflowStatus) any {
		if f.ErrorAt.IsZero() {
			return nil
		}
		return f.ErrorAt.Unix()
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeFirmwareMetrics writes the firmware receiver's versions and last
// attempt (nothing without Config.Firmware).
func writeFirmwareMetrics(w io.Writer, fw *fwupdate.Status) {
	if fw == nil {
		return
	}
	fmt.Fprintf(w, "# HELP edgebroker_firmware_info The running firmware version and the other root partition's (\"\": none usable).\n# TYPE edgebroker_firmware_info gauge\n")
	fmt.Fprintf(w, "edgebroker_firmware_info{running=%q,other=%q,board=%q} 1\n", fw.Running, fw.Other, fw.Board)
	if a := fw.Last; a != nil {
		outcome := "refused"
		if a.Installed {
			outcome = "installed"
		}
		fmt.Fprintf(w, "# HELP edgebroker_firmware_last_attempt_timestamp_seconds When the last firmware update was attempted, with its outcome and reason.\n# TYPE edgebroker_firmware_last_attempt_timestamp_seconds gauge\n")
		fmt.Fprintf(w, "edgebroker_firmware_last_attempt_timestamp_seconds{version=%q,outcome=%q,reason=%q} %d\n", a.Version, outcome, string(a.Reason), a.Time.Unix())
	}
}
