// Package ssclient connects a host-side tool to the state store of an
// edgebroker appliance (or of Azure IoT Operations) through the published
// AIO Go SDK: github.com/Azure/iot-operations-sdks/go/mqtt for the MQTT v5
// session and go/services/statestore for the RESP requests. Using the real
// SDK rather than a hand-written codec keeps the tools honest: whatever
// works here works for AIO applications too.
//
// Dial waits for the first CONNACK, so a refused connection or bad
// credentials are reported at once instead of being retried forever; after
// that the SDK reconnects on its own and Fatal reports when it gives up.
package ssclient

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/iot-operations-sdks/go/mqtt"
	"github.com/Azure/iot-operations-sdks/go/mqtt/retry"
	"github.com/Azure/iot-operations-sdks/go/protocol"
	"github.com/Azure/iot-operations-sdks/go/services/statestore"
)

// Config says where and how to connect.
type Config struct {
	Host string
	Port uint16
	// ClientID is the MQTT client identifier; "" picks a random one
	// (RandomClientID).
	ClientID string
	Username string
	Password []byte // sent when non-nil
	// TLS, when non-nil, makes the connection use TLS with these settings
	// (RootCAs, Certificates, InsecureSkipVerify, ServerName).
	TLS *tls.Config
	// ConnectTimeout bounds one connection attempt (TCP, TLS and
	// CONNECT/CONNACK); 0 means 10s.
	ConnectTimeout time.Duration
	// SessionExpiry is the MQTT session expiry the client asks for. The
	// session must outlive a dropped connection for the SDK to resume it;
	// a short one keeps a crashed tool from leaving a session behind
	// forever. 0 means 5 minutes.
	SessionExpiry time.Duration
	Logger        *slog.Logger // nil: discard
}

// Client is a connected state store client.
type Client struct {
	// Store is the SDK's state store client with []byte keys and values.
	Store *statestore.Client[[]byte, []byte]

	mc    *mqtt.SessionClient
	fatal chan error
	once  sync.Once
}

// RandomClientID returns a client identifier for one run of a tool,
// "statestore-" followed by 12 random hex digits (23 characters, the
// longest identifier every MQTT server must accept).
func RandomClientID() string {
	var b [6]byte
	rand.Read(b[:])
	return "statestore-" + hex.EncodeToString(b[:])
}

// Dial connects to the broker, waits for the first CONNACK and starts the
// state store client. It fails without retrying when the first connection
// attempt fails.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.ClientID == "" {
		cfg.ClientID = RandomClientID()
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.SessionExpiry <= 0 {
		cfg.SessionExpiry = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	addr := fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)

	var conn mqtt.ConnectionProvider
	if cfg.TLS != nil {
		t := cfg.TLS
		conn = mqtt.TLSConnection(cfg.Host, cfg.Port, func(_ context.Context, c *tls.Config) error {
			c.RootCAs = t.RootCAs
			c.Certificates = t.Certificates
			c.InsecureSkipVerify = t.InsecureSkipVerify
			c.ServerName = t.ServerName
			c.MinVersion = max(c.MinVersion, t.MinVersion)
			return nil
		})
	} else {
		conn = mqtt.TCPConnection(cfg.Host, cfg.Port)
	}

	opts := []mqtt.SessionClientOption{
		mqtt.WithCleanStart(true),
		mqtt.WithSessionExpiry(uint32(cfg.SessionExpiry / time.Second)),
		mqtt.WithConnectionTimeout(cfg.ConnectTimeout),
		mqtt.WithConnectionRetry(&firstAttemptOnly{later: &retry.ExponentialBackoff{
			MaxInterval: 10 * time.Second,
			Logger:      cfg.Logger,
		}}),
		mqtt.WithLogger(cfg.Logger),
	}
	if cfg.Username != "" {
		opts = append(opts, mqtt.WithUsername(mqtt.ConstantUsername(cfg.Username)))
	}
	if cfg.Password != nil {
		opts = append(opts, mqtt.WithPassword(mqtt.ConstantPassword(cfg.Password)))
	}
	mc, err := mqtt.NewSessionClient(cfg.ClientID, conn, opts...)
	if err != nil {
		return nil, fmt.Errorf("ssclient: %w", err)
	}

	c := &Client{mc: mc, fatal: make(chan error, 1)}
	connected := make(chan struct{})
	var once sync.Once
	doneConnect := mc.RegisterConnectEventHandler(func(*mqtt.ConnectEvent) {
		once.Do(func() { close(connected) })
	})
	defer doneConnect()
	mc.RegisterFatalErrorHandler(func(err error) {
		select {
		case c.fatal <- Explain(err):
		default:
		}
	})
	if err := mc.Start(); err != nil {
		return nil, fmt.Errorf("ssclient: %w", err)
	}

	select {
	case <-connected:
	case err := <-c.fatal:
		mc.Stop()
		return nil, fmt.Errorf("ssclient: connecting to %s: %w", addr, err)
	case <-ctx.Done():
		mc.Stop()
		return nil, fmt.Errorf("ssclient: connecting to %s: %w", addr, context.Cause(ctx))
	}

	app, err := protocol.NewApplication(protocol.WithLogger(cfg.Logger))
	if err != nil {
		mc.Stop()
		return nil, fmt.Errorf("ssclient: %w", err)
	}
	c.Store, err = statestore.New[[]byte, []byte](app, mc, statestore.WithLogger(cfg.Logger))
	if err != nil {
		mc.Stop()
		return nil, fmt.Errorf("ssclient: %w", err)
	}
	if err := c.Store.Start(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("ssclient: subscribing to responses: %w", err)
	}
	return c, nil
}

// ID returns the MQTT client identifier in use.
func (c *Client) ID() string { return c.mc.ID() }

// Fatal delivers the error that ended the session after Dial returned
// (reconnecting failed, session lost, disconnected for good), as Explain
// words it.
func (c *Client) Fatal() <-chan error { return c.fatal }

// Close disconnects, ending the MQTT session, and stops the state store
// client. It returns at once even when the broker is gone (the SDK's
// Close would wait for a connection to unsubscribe, so the session client
// stops first).
func (c *Client) Close() error {
	c.once.Do(func() {
		c.mc.Stop()
		if c.Store != nil {
			c.Store.Close()
		}
	})
	return nil
}

// Explain turns the SDK's connection errors into messages for people:
// CONNACK reason codes are named ("bad user name or password").
func Explain(err error) error {
	var code byte
	var fc *mqtt.FatalConnackError
	var cc *mqtt.ConnackError
	switch {
	case errors.As(err, &fc):
		code = fc.ReasonCode
	case errors.As(err, &cc):
		code = cc.ReasonCode
	default:
		return err
	}
	return &ConnectRefusedError{Code: code, Err: err}
}

// ConnectRefusedError is a CONNACK that refused the connection.
type ConnectRefusedError struct {
	Code byte
	Err  error // the SDK's error
}

func (e *ConnectRefusedError) Error() string {
	if s, ok := connackReasons[e.Code]; ok {
		return fmt.Sprintf("connection refused: %s (0x%02X)", s, e.Code)
	}
	return fmt.Sprintf("connection refused: reason code 0x%02X", e.Code)
}

func (e *ConnectRefusedError) Unwrap() error { return e.Err }

// connackReasons are the MQTT 5 CONNACK reason codes [MQTT-3.2.2.2].
var connackReasons = map[byte]string{
	0x80: "unspecified error",
	0x81: "malformed packet",
	0x82: "protocol error",
	0x83: "implementation specific error",
	0x84: "unsupported protocol version",
	0x85: "client identifier not valid",
	0x86: "bad user name or password",
	0x87: "not authorized",
	0x88: "server unavailable",
	0x89: "server busy",
	0x8A: "banned",
	0x8C: "bad authentication method",
	0x90: "topic name invalid",
	0x95: "packet too large",
	0x97: "quota exceeded",
	0x99: "payload format invalid",
	0x9A: "retain not supported",
	0x9B: "QoS not supported",
	0x9C: "use another server",
	0x9D: "server moved",
	0x9F: "connection rate exceeded",
}

// firstAttemptOnly makes the first connection a single attempt, so Dial
// fails fast, and retries later reconnections with the given policy.
type firstAttemptOnly struct {
	started atomic.Bool
	later   retry.Policy
}

func (p *firstAttemptOnly) Start(ctx context.Context, name string, task retry.Task) error {
	if p.started.CompareAndSwap(false, true) {
		_, err := task(ctx)
		return err
	}
	return p.later.Start(ctx, name, task)
}
