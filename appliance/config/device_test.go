package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const hdrD = "apiVersion: appliance.edgebroker.dev/v1\nkind: Device\nmetadata: {name: site}\n"

// goodDevice is a Device using every field, with its passphrase Secret.
const goodDevice = hdrD + `spec:
  hostname: gw-hall-3
  interfaces:
  - name: eth0
    addressing: Static
    address: 192.168.10.20/24
    gateway: 192.168.10.1
    dns: [192.168.10.1, 9.9.9.9]
  - name: eth1
  ntpServers: [192.168.10.1, ntp.example.com]
  wifi:
    ssid: hall-3
    passphraseSecretRef: {name: wifi}
---
apiVersion: v1
kind: Secret
metadata: {name: wifi}
stringData: {passphrase: correct horse battery}
`

func TestDeviceValid(t *testing.T) {
	rs, err := Parse("d.yaml", []byte(goodDevice))
	if err != nil {
		t.Fatal(err)
	}
	var s Set
	s.Add(rs...)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	d := s.Device()
	if d == nil {
		t.Fatal("Set.Device: nil")
	}
	want := DeviceSpec{
		Hostname: "gw-hall-3",
		Interfaces: []DeviceInterface{
			{Name: "eth0", Addressing: AddressingStatic, Address: "192.168.10.20/24", Gateway: "192.168.10.1", DNS: []string{"192.168.10.1", "9.9.9.9"}},
			{Name: "eth1", Addressing: AddressingDHCP},
		},
		NTPServers: []string{"192.168.10.1", "ntp.example.com"},
		WiFi:       &DeviceWiFi{SSID: "hall-3", PassphraseSecretRef: &SecretKeySelector{Name: "wifi", Key: DefaultPassphraseKey}},
	}
	if diff := cmp.Diff(want, d.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if got, want := s.WiFiPassphrase(), "correct horse battery"; got != want {
		t.Errorf("WiFiPassphrase: %q, want %q", got, want)
	}
	// Marshal and parse again: the same resource.
	b, err := Marshal(s.All()...)
	if err != nil {
		t.Fatal(err)
	}
	rs2, err := Parse("again.yaml", b)
	if err != nil {
		t.Fatalf("Parse(Marshal):\n%s\n%v", b, err)
	}
	var s2 Set
	s2.Add(rs2...)
	if diff := cmp.Diff(d.Spec, s2.Device().Spec); diff != "" {
		t.Errorf("after Marshal (-want +got):\n%s", diff)
	}
}

func TestDeviceErrors(t *testing.T) {
	iface := func(fields string) string {
		return hdrD + "spec:\n  interfaces:\n  - name: eth0\n" + fields
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"address not a prefix", iface("    addressing: Static\n    address: 10.0.0.300/24\n"),
			`d.yaml:8: Device/site: spec.interfaces[0].address: "10.0.0.300/24" is not an IP prefix`},
		{"address without length", iface("    addressing: Static\n    address: 10.0.0.3\n"),
			`spec.interfaces[0].address: "10.0.0.3" has no prefix length (e.g. 10.0.0.3/24)`},
		{"address is network", iface("    addressing: Static\n    address: 10.0.0.0/24\n"),
			`spec.interfaces[0].address: "10.0.0.0/24" is the network's own address`},
		{"address is broadcast", iface("    addressing: Static\n    address: 10.0.0.255/24\n"),
			`spec.interfaces[0].address: "10.0.0.255/24" is the network's broadcast address`},
		{"ipv6", iface("    addressing: Static\n    address: fd00::2/64\n"),
			`spec.interfaces[0].address: "fd00::2/64" is not IPv4`},
		{"static without address", iface("    addressing: Static\n"),
			`d.yaml:6: Device/site: spec.interfaces[0].address: required with addressing: Static (e.g. 192.168.1.20/24)`},
		{"gateway outside", iface("    addressing: Static\n    address: 10.0.0.3/24\n    gateway: 10.0.1.1\n"),
			`d.yaml:9: Device/site: spec.interfaces[0].gateway: "10.0.1.1" is outside 10.0.0.0/24: the device could not reach it`},
		{"gateway is own address", iface("    addressing: Static\n    address: 10.0.0.3/24\n    gateway: 10.0.0.3\n"),
			`spec.interfaces[0].gateway: "10.0.0.3" is the interface's own address`},
		{"gateway not an address", iface("    addressing: Static\n    address: 10.0.0.3/24\n    gateway: router\n"),
			`spec.interfaces[0].gateway: "router" is not an IPv4 address`},
		{"dns not an address", iface("    addressing: Static\n    address: 10.0.0.3/24\n    dns: [10.0.0.1, dns.example]\n"),
			`spec.interfaces[0].dns[1]: "dns.example" is not an IP address`},
		{"dhcp with address", iface("    address: 10.0.0.3/24\n"),
			`d.yaml:7: Device/site: spec.interfaces[0].address: only with addressing: Static (DHCP supplies it)`},
		{"addressing spelling", iface("    addressing: static\n"),
			`spec.interfaces[0].addressing: "static" is not valid; did you mean "Static"?`},
		{"interface name", hdrD + "spec:\n  interfaces:\n  - name: eth0/1\n",
			`d.yaml:6: Device/site: spec.interfaces[0].name: "eth0/1" is not an interface name`},
		{"interface twice", hdrD + "spec:\n  interfaces:\n  - name: eth0\n  - name: eth0\n",
			`d.yaml:7: Device/site: spec.interfaces[1].name: "eth0" already configured by spec.interfaces[0]`},
		{"hostname", hdrD + "spec: {hostname: gw_3}\n",
			`d.yaml:4: Device/site: spec.hostname: "gw_3" is not a host name`},
		{"ntp", hdrD + "spec: {ntpServers: [pool.ntp.org, 'ntp server']}\n",
			`spec.ntpServers[1]: "ntp server" is neither a host name nor an IP address`},
		{"wifi secret missing", hdrD + "spec:\n  wifi: {ssid: x, passphraseSecretRef: {name: nope}}\n",
			`spec.wifi.passphraseSecretRef.name: Secret/nope not found`},
		{"wifi key missing", hdrD + "spec:\n  wifi: {ssid: x, passphraseSecretRef: {name: opaque}}\n",
			`spec.wifi.passphraseSecretRef.key: Secret/opaque has no key "passphrase"`},
		{"wifi passphrase short", hdrD + "spec:\n  wifi: {ssid: x, passphraseSecretRef: {name: opaque, key: x}}\n",
			`spec.wifi.passphraseSecretRef.key: Secret/opaque[x] is not a WPA2 passphrase: want 8 to 63 printable ASCII characters (it has 1 bytes)`},
		{"ssid", hdrD + "spec:\n  wifi: {ssid: ''}\n",
			`spec.wifi.ssid: "": want 1 to 32 bytes`},
		{"two devices", hdrD + "spec: {}\n---\napiVersion: appliance.edgebroker.dev/v1\nkind: Device\nmetadata: {name: other}\n",
			`d.yaml:8: Device/other: metadata.name: only one Device resource is allowed; Device/site is already defined at d.yaml:3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Parse("d.yaml", []byte(tc.yaml+common))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var s Set
			s.Add(rs...)
			err = s.Validate()
			if err == nil {
				t.Fatalf("Validate: no error, want %s", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate:\n%v\nwant substring\n%s", err, tc.want)
			}
		})
	}
}

func TestDeviceParseStrict(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"typo", hdrD + "spec:\n  interfaces:\n  - name: eth0\n    adress: 10.0.0.3/24\n",
			`d.yaml:7: Device/site: spec.interfaces[0].adress: unknown field (did you mean "address"?)`},
		{"wrong group", "apiVersion: v1\nkind: Device\nmetadata: {name: site}\n",
			`d.yaml:1: Device/site: apiVersion: "v1" does not serve Device (want appliance.edgebroker.dev/v1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("d.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse:\n%v\nwant substring\n%s", err, tc.want)
			}
		})
	}
}
