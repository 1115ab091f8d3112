package broker_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/testenv"
)

// The mosquitto command-line clients (installed by tools/setup-test-deps)
// against the broker: MQTT 3.1.1 and 5.0, QoS 0, 1 and 2, retained.

func mosquittoArgs(addr, version string, qos byte) []string {
	host, port, _ := net.SplitHostPort(addr)
	return []string{"-h", host, "-p", port, "-V", version, "-q", fmt.Sprint(qos)}
}

func mosquittoPub(ctx context.Context, t *testing.T, addr, version string, qos byte, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "mosquitto_pub", append(mosquittoArgs(addr, version, qos), args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub %q: %v\n%s", cmd.Args[1:], err, out)
	}
}

func TestV3MosquittoClients(t *testing.T) {
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		testenv.NeedTool(t, tool)
	}
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	for _, version := range []string{"mqttv311", "mqttv5"} {
		for qos := range byte(3) {
			t.Run(fmt.Sprintf("%s/qos%d", version, qos), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				topic := fmt.Sprintf("mosq/%s/%d", version, qos)
				mosquittoPub(ctx, t, addr, version, qos, "-t", topic, "-r", "-m", "kept")

				// The retained message is the barrier: once it arrives, the
				// subscription is in place for the live one.
				args := append(mosquittoArgs(addr, version, qos), "-t", topic, "-C", "2", "-W", "8", "-F", "%r %q %t %p")
				sub := exec.CommandContext(ctx, "mosquitto_sub", args...)
				stdout, err := sub.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := sub.Start(); err != nil {
					t.Fatal(err)
				}
				lines := make(chan string, 2)
				go func() {
					sc := bufio.NewScanner(stdout)
					for sc.Scan() {
						lines <- sc.Text()
					}
					close(lines)
				}()
				next := func() string {
					select {
					case l, ok := <-lines:
						if !ok {
							t.Fatalf("mosquitto_sub ended early: %v", sub.Wait()) // stdout is at EOF
						}
						return l
					case <-ctx.Done():
						t.Fatal("timed out waiting for mosquitto_sub")
					}
					return ""
				}
				if got, want := next(), fmt.Sprintf("1 %d %s kept", qos, topic); got != want {
					t.Errorf("retained: got %q, want %q", got, want)
				}
				mosquittoPub(ctx, t, addr, version, qos, "-t", topic, "-m", "live")
				if got, want := next(), fmt.Sprintf("0 %d %s live", qos, topic); got != want {
					t.Errorf("live: got %q, want %q", got, want)
				}
				for range lines { // read to EOF before Wait
				}
				if err := sub.Wait(); err != nil {
					t.Errorf("mosquitto_sub: %v", err)
				}
				n := s.Retained()
				mosquittoPub(ctx, t, addr, version, qos, "-t", topic, "-r", "-n") // delete
				testenv.Eventually(t, brokertest.WaitTime, "the retained message deleted", func() bool { return s.Retained() == n-1 })
			})
		}
	}
}
