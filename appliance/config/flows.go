package config

import (
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// FlowDirection is which way a flow copies messages.
type FlowDirection int

// Flow directions.
const (
	FlowUp   FlowDirection = iota + 1 // from the appliance's broker (default) to the remote endpoint
	FlowDown                          // from the remote endpoint to the appliance's broker
)

func (d FlowDirection) String() string {
	switch d {
	case FlowUp:
		return "up"
	case FlowDown:
		return "down"
	}
	return "FlowDirection(" + strconv.Itoa(int(d)) + ")"
}

// ResolvedFlow is an enabled Dataflow with its remote endpoint's
// settings, defaults filled in and Secrets and ConfigMaps read.
type ResolvedFlow struct {
	Name      string        // the Dataflow's metadata.name
	Direction FlowDirection // FlowUp: default → Remote; FlowDown: Remote → default
	Remote    ResolvedEndpoint
	// Sources are the topic filters subscribed to on the source side, in
	// order; AIO's $shared/GROUP/ prefix is written as MQTT's $share/GROUP/.
	Sources []string
	// Destination is the topic template published to on the other side
	// (see ParseTopicTemplate).
	Destination string
}

// ResolvedEndpoint is a DataflowEndpoint's connection settings, resolved.
// Its byte slices are its own.
type ResolvedEndpoint struct {
	Name  string   // the DataflowEndpoint's metadata.name
	Hosts []string // host:port (for WebSockets, host:port/path too), tried in turn
	TLS   bool     // tls.mode Enabled
	// CAPEM holds the PEM certificates of trustedCaCertificateConfigMapRef
	// (every key, in key order); nil: trust the system's roots.
	CAPEM []byte
	// AuthMethod is Anonymous, X509Certificate or UsernamePassword.
	AuthMethod string
	// ClientCertPEM (leaf first, then intermediates) and ClientKeyPEM, for
	// X509Certificate.
	ClientCertPEM, ClientKeyPEM []byte
	// Username and Password, for UsernamePassword.
	Username string
	Password []byte

	ClientIDPrefix       string // "" if unset
	QoS                  byte   // 0 or 1
	SessionExpirySeconds uint32
	KeepAliveSeconds     uint16 // 0: no keep-alive
	MaxInflightMessages  uint16
	RetainKeep           bool   // retain Keep: forward the retain flag; Never: clear it
	Protocol             string // Mqtt or WebSockets
}

// Flows returns each enabled Dataflow, in load order, resolved. It is
// meant for a Set that passed Validate; a flow whose remote endpoint is
// missing or not an Mqtt endpoint is left out.
func (s *Set) Flows() []ResolvedFlow {
	var out []ResolvedFlow
	for _, d := range s.Dataflows {
		if f, ok := s.resolveFlow(d); ok {
			out = append(out, f)
		}
	}
	return out
}

func (s *Set) resolveFlow(d *Dataflow) (ResolvedFlow, bool) {
	src, dst := d.ends()
	if !d.Enabled() || src < 0 || dst < 0 {
		return ResolvedFlow{}, false
	}
	so, do := d.Spec.Operations[src].SourceSettings, d.Spec.Operations[dst].DestinationSettings
	if so == nil || do == nil {
		return ResolvedFlow{}, false
	}
	f := ResolvedFlow{Name: d.Metadata.Name, Destination: do.DataDestination}
	remote := ""
	switch {
	case so.EndpointRef == DefaultEndpoint && do.EndpointRef != DefaultEndpoint:
		f.Direction, remote = FlowUp, do.EndpointRef
	case do.EndpointRef == DefaultEndpoint && so.EndpointRef != DefaultEndpoint:
		f.Direction, remote = FlowDown, so.EndpointRef
	default:
		return ResolvedFlow{}, false
	}
	ep := s.DataflowEndpoint(remote)
	if ep == nil {
		return ResolvedFlow{}, false
	}
	r, ok := s.resolveEndpoint(ep)
	if !ok {
		return ResolvedFlow{}, false
	}
	f.Remote = r
	for _, src := range so.DataSources {
		f.Sources = append(f.Sources, normalizeShare(src))
	}
	return f, true
}

// resolveEndpoint resolves a (non-default) Mqtt endpoint; defaults must
// have been filled in.
func (s *Set) resolveEndpoint(ep *DataflowEndpoint) (ResolvedEndpoint, bool) {
	ep.setDefaults()
	m := ep.Spec.MqttSettings
	if ep.Spec.EndpointType != EndpointMqtt || m == nil || m.Authentication == nil {
		return ResolvedEndpoint{}, false
	}
	r := ResolvedEndpoint{
		Name:                 ep.Metadata.Name,
		Hosts:                splitHosts(m.Host),
		TLS:                  m.TLS.Mode == ModeEnabled,
		AuthMethod:           m.Authentication.Method,
		ClientIDPrefix:       m.ClientIDPrefix,
		QoS:                  byte(*m.QoS),
		SessionExpirySeconds: uint32(*m.SessionExpirySeconds),
		KeepAliveSeconds:     uint16(*m.KeepAliveSeconds),
		MaxInflightMessages:  uint16(*m.MaxInflightMessages),
		RetainKeep:           m.Retain == RetainKeep,
		Protocol:             m.Protocol,
	}
	if ref := m.TLS.TrustedCACertificateConfigMapRef; r.TLS && ref != "" {
		cm := s.ConfigMap(ref)
		if cm == nil {
			return ResolvedEndpoint{}, false
		}
		r.CAPEM = cm.certificatesPEM()
	}
	a := m.Authentication
	switch a.Method {
	case EndpointAnonymous:
	case EndpointX509Certificate:
		if a.X509CertificateSettings == nil {
			return ResolvedEndpoint{}, false
		}
		sec := s.Secret(a.X509CertificateSettings.SecretRef)
		if sec == nil {
			return ResolvedEndpoint{}, false
		}
		crt, key, missing := clientCertificate(sec)
		if missing != "" {
			return ResolvedEndpoint{}, false
		}
		r.ClientCertPEM, r.ClientKeyPEM = slices.Clone(crt), slices.Clone(key)
	case MethodUsernamePassword:
		if a.UsernamePasswordSettings == nil {
			return ResolvedEndpoint{}, false
		}
		sec := s.Secret(a.UsernamePasswordSettings.SecretRef)
		if sec == nil {
			return ResolvedEndpoint{}, false
		}
		u, _ := sec.Bytes(EndpointUsernameKey)
		p, _ := sec.Bytes(EndpointPasswordKey)
		r.Username, r.Password = string(u), slices.Clone(p)
	default:
		return ResolvedEndpoint{}, false
	}
	return r, true
}

// certificatesPEM returns the PEM CERTIFICATE blocks of every key, in key
// order.
func (c *ConfigMap) certificatesPEM() []byte {
	if c.bytes == nil {
		c.decode(new(report))
	}
	var out []byte
	for _, k := range sortedKeys(c.bytes) {
		for b := c.bytes[k]; ; {
			blk, rest := pem.Decode(b)
			if blk == nil {
				break
			}
			if blk.Type == "CERTIFICATE" {
				out = append(out, pem.EncodeToMemory(blk)...)
			}
			b = rest
		}
	}
	return out
}

// TopicTemplate is a Dataflow's dataDestination, parsed: literal text
// with the substitutions ${inputTopic} (the message's topic) and
// ${inputTopic.N} (its Nth level, from 1; leading and trailing '/' are
// ignored when counting). The zero TopicTemplate expands to nothing.
type TopicTemplate struct {
	parts []templatePart
}

// templatePart is literal text (level < 0), the whole topic (level 0) or
// one level of it.
type templatePart struct {
	lit   string
	level int
}

// ParseTopicTemplate parses a dataDestination. Wildcards ('+', '#') are
// not allowed, and ${inputTopic} and ${inputTopic.N} with N ≥ 1 are the
// only substitutions; a '$' not followed by '{' is literal text, as '$'
// is a valid character in MQTT topics.
func ParseTopicTemplate(s string) (TopicTemplate, error) {
	var t TopicTemplate
	switch {
	case s == "":
		return t, errors.New("empty topic")
	case len(s) > 65535:
		return t, errors.New("longer than 65535 bytes")
	case strings.ContainsAny(s, "+#"):
		return t, errors.New("wildcards ('+', '#') are not allowed in a destination topic")
	}
	rest := s
	for rest != "" {
		i := strings.Index(rest, "${")
		if i < 0 {
			t.parts = append(t.parts, templatePart{lit: rest, level: -1})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, templatePart{lit: rest[:i], level: -1})
		}
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return TopicTemplate{}, fmt.Errorf("unterminated %q (want ${inputTopic} or ${inputTopic.N})", rest[i:])
		}
		sub := rest[i : i+end+1]
		level, err := substitution(sub)
		if err != nil {
			return TopicTemplate{}, err
		}
		t.parts = append(t.parts, templatePart{level: level})
		rest = rest[i+end+1:]
	}
	return t, nil
}

// substitution parses "${inputTopic}" (0) or "${inputTopic.N}" (N).
func substitution(sub string) (int, error) {
	inner := sub[2 : len(sub)-1]
	if inner == "inputTopic" {
		return 0, nil
	}
	if n, ok := strings.CutPrefix(inner, "inputTopic."); ok {
		v, err := strconv.Atoi(n)
		switch {
		case err != nil || n[0] == '+' || n[0] == '-' || (n[0] == '0' && v != 0):
			return 0, fmt.Errorf("%s: the level must be a number, ${inputTopic.N} with N ≥ 1", sub)
		case v < 1:
			return 0, fmt.Errorf("%s: levels count from 1", sub)
		}
		return v, nil
	}
	return 0, fmt.Errorf("unknown substitution %s (want ${inputTopic} or ${inputTopic.N}, N ≥ 1)", sub)
}

// Expand returns the destination topic for a message published to topic,
// and false if a level the template names is not there (AIO drops such a
// message) or the result is empty.
func (t TopicTemplate) Expand(topic string) (string, bool) {
	var b strings.Builder
	var levels []string
	for _, p := range t.parts {
		switch {
		case p.level < 0:
			b.WriteString(p.lit)
		case p.level == 0:
			b.WriteString(topic)
		default:
			if levels == nil {
				levels = strings.Split(strings.Trim(topic, "/"), "/")
			}
			if p.level > len(levels) {
				return "", false
			}
			b.WriteString(levels[p.level-1])
		}
	}
	if b.Len() == 0 {
		return "", false
	}
	return b.String(), true
}
