package broker

import (
	"io"
	"net"
	"testing"
	"time"

	"edgebroker/broker/packet"
)

// FuzzConnection feeds arbitrary bytes to a server connection after a
// valid CONNECT: whatever arrives, the broker must not panic or hang, and
// must keep serving others.
func FuzzConnection(f *testing.F) {
	for _, v := range []byte{packet.V311, packet.V5} {
		cp := packet.Connect{ProtocolName: []byte("MQTT"), Version: v, ClientID: []byte("fuzz"), KeepAlive: 30}
		conn := cp.Append(nil)
		f.Add(conn, []byte{})
		seq := (&packet.Subscribe{PacketID: 1, Filters: []packet.Subscription{{Filter: []byte("a/#"), QoS: 2}, {Filter: []byte("$share/g/a/+"), QoS: 1}}}).Append(nil, v)
		seq = (&packet.Publish{Topic: []byte("a/b"), QoS: 2, PacketID: 2, Retain: true, Payload: []byte("x")}).Append(seq, v)
		seq = (&packet.Ack{Type: packet.PUBREL, PacketID: 2}).Append(seq, v)
		seq = (&packet.Ack{Type: packet.PUBACK, PacketID: 1}).Append(seq, v)
		seq = (&packet.Ack{Type: packet.PUBREC, PacketID: 1}).Append(seq, v)
		seq = (&packet.Ack{Type: packet.PUBCOMP, PacketID: 1}).Append(seq, v)
		seq = (&packet.Unsubscribe{PacketID: 3, Filters: [][]byte{[]byte("a/#")}}).Append(seq, v)
		seq = packet.AppendPingreq(seq)
		seq = (&packet.Disconnect{}).Append(seq, v)
		f.Add(conn, seq)
		p := packet.Publish{Topic: []byte("t"), QoS: 1, PacketID: 9}
		if v == packet.V5 {
			p.Props.Set(packet.PropTopicAlias)
			p.Props.TopicAlias = 1
		}
		f.Add(conn, p.Append(nil, v))
	}
	s := New(Config{Limits: Limits{ConnectTimeout: time.Second, MaxPacketSize: 1 << 16}})
	f.Fuzz(func(t *testing.T, connect, data []byte) {
		client, server := net.Pipe()
		if !s.startConn(server, &Port{Name: "fuzz"}) {
			t.Fatal("server closed")
		}
		go func() {
			client.SetWriteDeadline(time.Now().Add(2 * time.Second))
			client.Write(connect)
			client.Write(data)
			client.Close()
		}()
		client.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.Copy(io.Discard, client); err != nil && !isClosedPipe(err) {
			t.Fatalf("server did not end the connection: %v", err)
		}
	})
}

func isClosedPipe(err error) bool { return err == io.ErrClosedPipe }
