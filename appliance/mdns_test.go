package appliance_test

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgebroker/appliance"
	"edgebroker/appliance/announce"
	"edgebroker/appliance/announce/announcetest"
	"edgebroker/broker/testenv"
	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/certs/certstest"
)

// lanListener is a LoadBalancer BrokerListener named lan (every
// interface) with the given ports, then any more YAML for its ports.
func lanListener(ports string) string {
	return `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lan
spec:
  serviceType: LoadBalancer
  ports:
` + ports
}

// TestMDNSFollowsConfiguration: with -mdns, a DNS-SD browser on the LAN
// finds the broker's plain ports as _mqtt._tcp, its TLS ports as
// _secure-mqtt._tcp and its status page as _http._tcp, named after the
// host, with the board's serial (and the bundle's, once one is in force)
// in the TXT record; ports on loopback are not announced. A reload and a
// bundle change what the browser finds (the port that went gets a
// goodbye), and shutdown says goodbye.
func TestMDNSFollowsConfiguration(t *testing.T) {
	if !testenv.InNetns(t) {
		return
	}
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := strings.Cut(h, ".")
	board := t.TempDir()
	if err := os.MkdirAll(filepath.Join(board, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(board, "etc/machine-id"), []byte("board-mdns-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := writeConfig(t, map[string]string{"listener.yaml": lanListener("  - port: 1884\n") + `---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: local
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
`})
	a, _, stop := launch(t, appliance.Config{
		DataDir: t.TempDir(), ConfigPath: dir, MDNS: true, BoardRoot: board,
		Listen: []string{":1890", "127.0.0.1:1891"}, StatusAddr: ":8080",
		Trust: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)},
	})
	defer stop()
	client := testenv.LAN[1].Name
	found := func(instance string, port int, txt string) string {
		return fmt.Sprintf("%s@%s.local.:%d [%s] [10.77.0.1 10.77.0.2]", instance, host, port, txt)
	}
	id := "id=board-mdns-1"
	announcetest.AwaitBrowse(t, client, announce.MQTT, found(host, 1884, id), found(host+" (1890)", 1890, id))
	announcetest.AwaitBrowse(t, client, announce.HTTP, found(host, 8080, "path=/"))

	// A reload: 1884 goes, 1885 and the TLS port 8885 come.
	leaf := certstest.Root("root", certstest.EC256).Server("server", []string{"localhost"}, nil, certstest.EC256)
	writeFile(t, dir, "listener.yaml", lanListener(`  - port: 1885
  - port: 8885
    tls:
      mode: Manual
      manual:
        secretRef: server-cert
`))
	writeFile(t, dir, "secret.yaml", tlsSecret("server-cert", leaf.ChainPEM(), leaf.KeyPEM()))
	bye := announcetest.Goodbyes(t, client)
	if err := a.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	announcetest.AwaitGoodbye(t, bye, host+"._mqtt._tcp.local.:1884")
	announcetest.AwaitBrowse(t, client, announce.MQTT, found(host, 1885, id), found(host+" (1890)", 1890, id))
	announcetest.AwaitBrowse(t, client, announce.SecureMQTT, found(host, 8885, id))

	// A bundle: its configuration and its serial.
	res := a.Install(t.Context(), packBundle(t, key, 1, map[string]string{"lan.yaml": lanListener("  - port: 1886\n")}, nil))
	if !res.Applied {
		t.Fatalf("bundle not applied: %v", res.Reasons)
	}
	id += ",bundle=1"
	announcetest.AwaitBrowse(t, client, announce.MQTT, found(host, 1886, id), found(host+" (1890)", 1890, id))

	stop()
	announcetest.AwaitGoodbye(t, bye, host+"._http._tcp.local.:8080")
}
