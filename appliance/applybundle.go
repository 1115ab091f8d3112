package appliance

import (
	"context"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"edgebroker/appliance/config"
	"edgebroker/provisioning/atomicfile"
)

// StagedMessage is what the report of ApplyBundleFile says of a port that
// will serve: nothing is bound until edgebroker runs on the data
// directory.
const StagedMessage = "staged: served when edgebroker starts on this data directory"

// ApplyBundleFile applies the bundle in file to cfg.DataDir without
// running the broker, as plugging in a stick holding it would on the
// device (cfg.DataDir, cfg.Trust and cfg.BoardRoot as Run takes them):
// the same bounded read, the same provisioning store and checks
// (signature by a trusted or enrolled key, a serial above the last one
// applied, expiry, the device selector against this machine's identity,
// every document validated), and the same building of the configuration
// (server chains, password files, policies; certificates issued into
// DATA/certs, DATA/ca.crt exported). A configuration that cannot be
// built is rolled back as on the device. Only binding its ports is left
// to the device: this machine's ports say nothing about the device's.
//
// The report the stick would get (edgebroker-report.txt, .json and
// edgebroker-ca.crt) is written next to file and returned. The error is
// for what keeps the attempt from being made at all: a data directory
// that cannot be used or is locked by a running edgebroker (which would
// not see the change), or a report that cannot be written.
func ApplyBundleFile(ctx context.Context, cfg Config, file string) (Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := newAppliance(ctx, &cfg)
	if err != nil {
		return Report{}, err
	}
	defer a.pid.release()
	// ACME http-01 challenges are answered by the device once it runs.
	a.iss.http01 = func() error { return nil }
	var staged []*port
	a.prov.Apply = func(_ context.Context, dir string) error {
		set, err := loadConfig(dir, a.log)
		if err != nil {
			return err
		}
		ports, err := a.portsFor(dir, set)
		if err != nil {
			return err
		}
		a.reloadMu.Lock()
		a.set, a.path = set, dir
		a.showDevice(set, "") // the device applies them when it runs
		a.reloadMu.Unlock()
		staged = ports
		return nil
	}
	med := dirMedium(filepath.Dir(file))
	res := a.installFrom(ctx, med, filepath.Base(file))
	rep := Report{Device: a.id, Result: res, Status: a.stagedStatus(staged), Running: a.running()}
	a.mu.Lock()
	rep.Status.Device = a.deviceStatus
	a.mu.Unlock()
	err = a.writeReport(med, &rep)
	return rep, err
}

// stagedStatus is the status of ports built but not bound, and of the
// certificates the device will renew.
func (a *Appliance) stagedStatus(ports []*port) Status {
	var st Status
	for _, p := range ports {
		ps := PortStatus{Listener: p.listener, Port: p.number, Message: p.waiting, TLS: p.certInfo}
		if ps.Message == "" {
			ps.Message = StagedMessage
		}
		if c := p.certInfo; c != nil && c.Mode == config.TLSAutomatic {
			cs := a.certStatus(c.Secret)
			cs.Mode = c.Mode
			ps.TLS = &cs
		}
		st.Ports = append(st.Ports, ps)
	}
	names := a.iss.m.Statuses()
	for _, name := range slices.Sorted(maps.Keys(names)) {
		st.Certificates = append(st.Certificates, a.certStatus(name))
	}
	st.Provisioning.Serial = a.prov.LastSerial()
	h := a.prov.History()
	slices.Reverse(h)
	st.Provisioning.History = h[:min(len(h), 10)]
	return st
}

// dirMedium is a folder standing in for a stick: the bundle is read from
// it and the report written to it.
type dirMedium string

func (d dirMedium) FS() fs.FS { return os.DirFS(string(d)) }

func (d dirMedium) WriteFile(name string, data []byte) error {
	return atomicfile.WriteFile(filepath.Join(string(d), filepath.FromSlash(name)), data, 0o644)
}

func (d dirMedium) Close() error { return nil }
