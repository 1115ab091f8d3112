package appliance

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"edgebroker/appliance/config"
	"edgebroker/broker"
	"edgebroker/broker/packet"
	"edgebroker/provisioning/certs"
)

// customAPIVersion is the AIO custom authentication API the appliance
// speaks (Azure-Samples/explore-iot-operations auth-server-template
// api/0.5.0.yaml).
const customAPIVersion = "0.5.0"

// customTimeout bounds one call to the authentication server.
const customTimeout = 10 * time.Second

// customMethod forwards a CONNECT's credentials (with a 5.0 enhanced
// authentication method and data) and a connected 5.0 client's
// re-authentication to an HTTPS authentication server, as AIO's Custom
// method does: 200 admits the client with attributes and an optional
// credential expiry, 403 refuses it with the reason code the server
// names. A server that cannot be reached, or answers otherwise, makes the
// method not relevant, so the next method is tried (at re-authentication:
// a transient failure).
type customMethod struct {
	endpoint string
	headers  map[string]string
	client   *http.Client
	log      *slog.Logger
}

var _ reauthMethod = (*customMethod)(nil)

// newCustomMethod builds the HTTPS client: the server is verified against
// caCertConfigMap (or the system roots), and the broker presents the
// client certificate of auth.x509.secretRef when one is set.
func newCustomMethod(set *config.Set, ba *config.BrokerAuthentication, cs *config.CustomSettings, log *slog.Logger) (*customMethod, error) {
	if cs == nil {
		return nil, resourceError(ba, "spec.authenticationMethods.customSettings", "method Custom needs customSettings.endpoint")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cs.CACertConfigMap != "" {
		cm := set.ConfigMap(cs.CACertConfigMap)
		if cm == nil {
			return nil, resourceError(ba, "spec.authenticationMethods.customSettings.caCertConfigMap", "ConfigMap/%s not found", cs.CACertConfigMap)
		}
		pool, err := clientCAs(cm)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if cs.Auth != nil && cs.Auth.X509.SecretRef != "" {
		sec := set.Secret(cs.Auth.X509.SecretRef)
		if sec == nil {
			return nil, resourceError(ba, "spec.authenticationMethods.customSettings.auth.x509.secretRef", "Secret/%s not found", cs.Auth.X509.SecretRef)
		}
		crt, _ := sec.Bytes("tls.crt")
		key, _ := sec.Bytes("tls.key")
		c, err := certs.ParseChain(crt, key)
		if err != nil {
			return nil, resourceError(sec, secretPath(sec, "tls.crt"), "client certificate for the authentication server: %v", err)
		}
		tc.Certificates = []tls.Certificate{*c}
	}
	u, err := url.Parse(cs.Endpoint)
	if err != nil || u.Scheme != "https" {
		return nil, resourceError(ba, "spec.authenticationMethods.customSettings.endpoint", "%q is not an https URL", cs.Endpoint)
	}
	q := u.Query()
	q.Set("api-version", customAPIVersion)
	u.RawQuery = q.Encode()
	return &customMethod{
		endpoint: u.String(),
		headers:  cs.Headers,
		client:   &http.Client{Timeout: customTimeout, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}},
		log:      log,
	}, nil
}

// customRequest is the request body: API 0.5.0's ConnectRequest (type
// "connect") or AuthRequest (type "auth", a 5.0 AUTH packet). The API
// defines no fields for 5.0 enhanced authentication, which AIO leaves to
// the server ("set the method and data as the custom authentication
// server requires"): edgebroker adds authenticationMethod and
// authenticationData (base64) to both; the schemas allow additional
// properties, and a server that does not know them ignores them.
type customRequest struct {
	Type       string `json:"type"`
	Username   string `json:"username,omitempty"`
	Password   string `json:"password,omitempty"` // base64
	Certs      string `json:"certs,omitempty"`    // PEM chain from the TLS handshake
	AuthMethod string `json:"authenticationMethod,omitempty"`
	AuthData   string `json:"authenticationData,omitempty"` // base64
}

// customPass is the AuthPassResponse body.
type customPass struct {
	Expiry     string         `json:"expiry"`
	Attributes map[string]any `json:"attributes"`
}

// customFail is the AuthFailResponse body.
type customFail struct {
	Reason  int    `json:"reason"`
	Message string `json:"message"`
}

// authenticate asks the server about a CONNECT, with its enhanced
// authentication method and data when it has them. API 0.5.0 has no
// answer that continues an exchange, so it is one step: admitted or
// refused.
func (m *customMethod) authenticate(c *broker.Client, r *broker.AuthRequest) (broker.AuthResult, bool) {
	req := customRequest{Type: "connect", Username: string(r.Username), AuthMethod: r.Method}
	if r.HasPassword {
		req.Password = base64.StdEncoding.EncodeToString(r.Password)
	}
	if r.Method != "" && len(r.Data) > 0 {
		req.AuthData = base64.StdEncoding.EncodeToString(r.Data)
	}
	if c.TLS != nil {
		var b bytes.Buffer
		for _, pc := range c.TLS.PeerCertificates {
			pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: pc.Raw})
		}
		req.Certs = b.String()
	}
	res, attrs, ok := m.ask(c, &req)
	if ok && res.Code == packet.Success {
		c.Username, c.Attributes = string(r.Username), attrs
		res.Principal = customPrincipal(c, r)
	}
	return res, ok
}

// customPrincipal is who a custom server admitted: what it was shown.
// The request carries the username and the client's certificates (not
// the client identifier), so the principal is "custom:user:" and the
// username, else "custom:x509:" and the leaf certificate's subject, else "custom:port:" and the port: the server vouched for no
// identity, and the port's such clients share their sessions as on an
// anonymous port.
func customPrincipal(c *broker.Client, r *broker.AuthRequest) string {
	switch {
	case len(r.Username) > 0:
		return "custom:user:" + string(r.Username)
	case c.TLS != nil && len(c.TLS.PeerCertificates) > 0:
		return "custom:" + x509Principal(c.TLS.PeerCertificates[0])
	}
	return "custom:port:" + c.Port
}

// reauthenticate asks the server about a connected client's AUTH
// (re-authentication). Its answer replaces the credential expiry; the
// client's attributes stay those of the CONNECT (they are fixed once
// connected). false: the server could not be asked (a transient failure).
func (m *customMethod) reauthenticate(c *broker.Client, r *broker.AuthRequest) (broker.AuthResult, bool) {
	req := customRequest{Type: "auth", AuthMethod: r.Method}
	if len(r.Data) > 0 {
		req.AuthData = base64.StdEncoding.EncodeToString(r.Data)
	}
	res, _, ok := m.ask(c, &req)
	return res, ok
}

// ask posts one request. ok is false when the server cannot be reached
// or answers outside the API: the method has no verdict.
func (m *customMethod) ask(c *broker.Client, req *customRequest) (res broker.AuthResult, attrs map[string]string, ok bool) {
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), customTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, m.endpoint, bytes.NewReader(body))
	if err != nil {
		return broker.AuthResult{}, nil, false
	}
	hr.Header.Set("Content-Type", "application/json")
	for k, v := range m.headers {
		hr.Header.Set(k, v)
	}
	resp, err := m.client.Do(hr)
	if err != nil {
		m.log.Warn("custom authentication server unreachable: no verdict", "endpoint", m.endpoint, "type", req.Type, "err", err)
		return broker.AuthResult{}, nil, false
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusOK:
		var pass customPass
		if err := json.Unmarshal(data, &pass); err != nil {
			m.log.Warn("custom authentication: bad 200 body: no verdict", "err", err)
			return broker.AuthResult{}, nil, false
		}
		res := broker.AuthResult{Code: packet.Success}
		if pass.Expiry != "" {
			t, err := time.Parse(time.RFC3339, pass.Expiry)
			if err != nil {
				m.log.Warn("custom authentication: bad expiry: no verdict", "expiry", pass.Expiry)
				return broker.AuthResult{}, nil, false
			}
			res.Expiry = t
		}
		attrs := make(map[string]string, len(pass.Attributes))
		for k, v := range pass.Attributes {
			if s, ok := v.(string); ok {
				attrs[k] = s
			} else {
				attrs[k] = fmt.Sprint(v)
			}
		}
		return res, attrs, true
	case http.StatusForbidden:
		var fail customFail
		json.Unmarshal(data, &fail)
		code := packet.Code(fail.Reason)
		if fail.Reason < 0x80 || fail.Reason > 0xff {
			code = packet.NotAuthorized
		}
		m.log.Info("custom authentication refused", "client", c.ID, "type", req.Type, "reason", fmt.Sprintf("%#x", byte(code)), "message", fail.Message)
		return broker.AuthResult{Code: code}, nil, true
	default:
		m.log.Warn("custom authentication: unexpected answer: no verdict", "status", resp.StatusCode, "body", string(data))
		return broker.AuthResult{}, nil, false
	}
}
