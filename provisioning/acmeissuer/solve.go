package acmeissuer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
)

// Challenge types this package answers.
const (
	typeHTTP01    = "http-01"
	typeTLSALPN01 = "tls-alpn-01"
)

// Authorization polling: quick at first (a validation takes well under a
// second), then backing off; the caller's context bounds the total.
const (
	pollMin = 50 * time.Millisecond
	pollMax = 3 * time.Second
)

// accepted is an authorization whose challenge we asked the CA to
// validate.
type accepted struct {
	url, id, typ string
}

// authorize answers one challenge of each pending authorization of
// order, then waits until all of them are valid. Answers are withdrawn
// when it returns; authorizations left pending by a failure are
// deactivated so they do not pile up at the CA.
func (is *Issuer) authorize(ctx context.Context, c *acme.Client, order *acme.Order) (err error) {
	var withdraw []func()
	var waiting []accepted
	defer func() {
		for _, f := range withdraw {
			f()
		}
		if err != nil && ctx.Err() == nil {
			is.deactivate(ctx, c, waiting)
		}
	}()
	for _, u := range order.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		if err != nil {
			return fmt.Errorf("acme: authorization %s: %w", u, unwrapURL(err))
		}
		id := z.Identifier.Type + ":" + z.Identifier.Value
		switch z.Status {
		case acme.StatusValid:
			continue
		case acme.StatusPending:
		default:
			return fmt.Errorf("acme: authorization for %s is %s", id, z.Status)
		}
		ch := is.pick(z)
		if ch == nil {
			return fmt.Errorf("acme: authorization for %s offers none of the enabled challenges %s (offered: %s)",
				id, is.enabled(), offered(z))
		}
		remove, err := is.publish(c, z.Identifier, ch)
		if err != nil {
			return fmt.Errorf("acme: %s challenge for %s: %w", ch.Type, id, err)
		}
		withdraw = append(withdraw, remove)
		if _, err := c.Accept(ctx, ch); err != nil {
			return fmt.Errorf("acme: accept %s challenge for %s: %w", ch.Type, id, unwrapURL(err))
		}
		is.log.Debug("acme challenge accepted", "identifier", id, "type", ch.Type)
		waiting = append(waiting, accepted{url: u, id: id, typ: ch.Type})
	}
	for len(waiting) > 0 {
		if err := waitAuthz(ctx, c, waiting[0]); err != nil {
			return err
		}
		waiting = waiting[1:]
	}
	return nil
}

// enabled lists the enabled challenge types, preferred first.
func (is *Issuer) enabled() []string {
	var types []string
	if is.cfg.TLSALPN01 {
		types = append(types, typeTLSALPN01)
	}
	if is.cfg.HTTP01 {
		types = append(types, typeHTTP01)
	}
	return types
}

// pick returns the challenge of z to answer: tls-alpn-01 before http-01,
// among those enabled.
func (is *Issuer) pick(z *acme.Authorization) *acme.Challenge {
	for _, t := range is.enabled() {
		for _, ch := range z.Challenges {
			if ch.Type == t {
				return ch
			}
		}
	}
	return nil
}

func offered(z *acme.Authorization) string {
	var types []string
	for _, ch := range z.Challenges {
		types = append(types, ch.Type)
	}
	return strings.Join(types, ", ")
}

// publish adds the answer to ch to the Challenges registry and returns
// the func that withdraws it.
func (is *Issuer) publish(c *acme.Client, id acme.AuthzID, ch *acme.Challenge) (func(), error) {
	switch ch.Type {
	case typeTLSALPN01:
		cert, err := c.TLSALPN01ChallengeCert(ch.Token, id.Value)
		if err != nil {
			return nil, err
		}
		return is.cfg.Challenges.addTLSALPN01(id.Value, &cert), nil
	case typeHTTP01:
		if !validToken(ch.Token) {
			return nil, fmt.Errorf("the CA sent a token that is not base64url (%d bytes)", len(ch.Token))
		}
		ka, err := c.HTTP01ChallengeResponse(ch.Token)
		if err != nil {
			return nil, err
		}
		return is.cfg.Challenges.addHTTP01(ch.Token, ka), nil
	}
	return nil, fmt.Errorf("unsupported challenge type %q", ch.Type)
}

// waitAuthz polls a until the CA has validated it.
func waitAuthz(ctx context.Context, c *acme.Client, a accepted) error {
	d := pollMin
	for {
		z, err := c.GetAuthorization(ctx, a.url)
		if err != nil {
			return fmt.Errorf("acme: %s challenge for %s: poll %s: %w", a.typ, a.id, a.url, unwrapURL(err))
		}
		switch z.Status {
		case acme.StatusValid:
			return nil
		case acme.StatusPending, acme.StatusProcessing:
		default:
			return fmt.Errorf("acme: %s challenge for %s failed: authorization %s%s", a.typ, a.id, z.Status, problems(z))
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("acme: %s challenge for %s: not validated yet: %w", a.typ, a.id, ctx.Err())
		case <-t.C:
		}
		d = min(2*d, pollMax)
	}
}

// problems formats the errors the CA reported for z's challenges.
func problems(z *acme.Authorization) string {
	var b strings.Builder
	for _, ch := range z.Challenges {
		if ch.Error != nil {
			fmt.Fprintf(&b, "; %s: %v", ch.Type, ch.Error)
		}
	}
	return b.String()
}

// deactivate gives up the authorizations in waiting, best effort and
// briefly. (When the issuance context is done, e.g. at shutdown, they
// are left to expire at the CA.)
func (is *Issuer) deactivate(ctx context.Context, c *acme.Client, waiting []accepted) {
	if len(waiting) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, a := range waiting {
		if err := c.RevokeAuthorization(ctx, a.url); err != nil {
			is.log.Debug("acme authorization not deactivated", "identifier", a.id, "err", err)
		}
	}
}
