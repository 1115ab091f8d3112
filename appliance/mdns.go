package appliance

import (
	"net"
	"strconv"

	"edgebroker/appliance/announce"
)

// announcements lists what the appliance announces on its LAN (mDNS and
// DNS-SD, package announce), in this order: the configured MQTT ports in
// configuration order, then the -listen ports, as _mqtt._tcp (plain) or
// _secure-mqtt._tcp (TLS); then the status page as _http._tcp. Only
// ports served on a LAN address count: one bound to loopback (a ClusterIp
// listener) is not reachable from the LAN, and a WebSocket port is not
// MQTT over TCP (DNS-SD has no type for it). The MQTT services' TXT
// record names the board (id: its serial) and the bundle in force
// (bundle: its serial; absent before the first bundle). The caller holds
// reloadMu.
func (a *Appliance) announcements() []announce.Service {
	txt := []string{"id=" + a.id.Serial}
	if a.bundleSerial != 0 {
		txt = append(txt, "bundle="+strconv.FormatUint(a.bundleSerial, 10))
	}
	a.mu.Lock()
	ports := append(append([]PortStatus(nil), a.status.Ports...), a.listen...)
	a.mu.Unlock()
	var out []announce.Service
	for _, ps := range ports {
		typ := announce.MQTT
		if ps.Listener != ListenFlag {
			lp := a.live[portKey(ps.Listener, ps.Port)]
			if lp == nil || lp.ws {
				continue
			}
			if lp.tlsOn {
				typ = announce.SecureMQTT
			}
		}
		if port, ok := lanPort(ps.Addr); ps.Serving && ok {
			out = append(out, announce.Service{Type: typ, Port: port, Text: txt})
		}
	}
	if port, ok := lanPort(a.statusAddr); ok {
		typ := announce.HTTP
		if a.cfg.StatusTLS {
			typ = announce.HTTPS // a browser must not try http://
		}
		out = append(out, announce.Service{Type: typ, Port: port, Text: []string{"path=/"}})
	}
	return out
}

// lanPort returns the port of a TCP address reachable from the LAN (not
// loopback).
func lanPort(addr net.Addr) (int, bool) {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || ta.IP.IsLoopback() {
		return 0, false
	}
	return ta.Port, true
}

// announce hands the current list to the mDNS responder, if there is
// one. A service that cannot be announced is logged; the broker serves
// regardless. The caller holds reloadMu.
func (a *Appliance) announce() {
	if a.mdns == nil {
		return
	}
	if err := a.mdns.Update(a.announcements()); err != nil {
		a.log.Warn("mDNS announcement", "err", err)
	}
}
