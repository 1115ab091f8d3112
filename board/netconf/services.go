package netconf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Services stops and restarts the programs gokrazy supervises, by path
// (/gokrazy/dhcp).
type Services interface {
	Stop(ctx context.Context, path string) error
	Restart(ctx context.Context, path string) error
}

// ErrNoService is wrapped by Services' errors for a program the image
// does not have.
var ErrNoService = errors.New("netconf: no such service")

// Gokrazy's HTTP interface on the device.
const (
	GokrazySocket       = "/run/gokrazy-http.sock" // gokrazy.HTTPUnixSocket
	GokrazyPasswordFile = "/etc/gokr-pw.txt"
)

// GokrazyAPI is Services through gokrazy's own web interface (the /stop
// and /restart its status page uses), on its unix socket, as user
// "gokrazy" with the image's password; an image built without one (the
// default: gokrazy then listens on its socket only) needs none.
type GokrazyAPI struct {
	Socket string // "": GokrazySocket
	// PasswordFile is "": /perm/gokr-pw.txt if present, else
	// GokrazyPasswordFile; when GokrazyPasswordFile (or the PasswordFile
	// given) does not exist, no password, as gokrazy decides.
	PasswordFile string
}

// Stop stops the program at path until Restart.
func (g GokrazyAPI) Stop(ctx context.Context, path string) error { return g.post(ctx, "/stop", path) }

// Restart starts the program at path again (stopping it first if it runs).
func (g GokrazyAPI) Restart(ctx context.Context, path string) error {
	return g.post(ctx, "/restart", path)
}

func (g GokrazyAPI) post(ctx context.Context, op, path string) error {
	sock := g.Socket
	if sock == "" {
		sock = GokrazySocket
	}
	pw, err := g.password()
	if err != nil {
		return err
	}
	c := &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
		// gokrazy answers 303 to its status page: that is success.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer c.CloseIdleConnections()
	// gokrazy checks that the form's token equals the cookie's: any
	// value the client picks for both passes (they guard browsers).
	form := url.Values{"path": {path}, "xsrftoken": {"1"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://gokrazy"+op, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "gokrazy_xsrf", Value: "1"})
	if pw != "" {
		req.SetBasicAuth("gokrazy", pw)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("netconf: gokrazy %s %s: %w", op, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("gokrazy %s %s: %w", op, path, ErrNoService)
	case resp.StatusCode >= 400:
		return fmt.Errorf("netconf: gokrazy %s %s: %s: %s", op, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// password reads the web interface's password as gokrazy does: /perm
// first, then the image's /etc.
func (g GokrazyAPI) password() (string, error) {
	files := []string{"/perm/gokr-pw.txt", GokrazyPasswordFile}
	if g.PasswordFile != "" {
		files = []string{g.PasswordFile}
	}
	if _, err := os.Stat(files[len(files)-1]); errors.Is(err, fs.ErrNotExist) {
		// Built without a password: gokrazy takes its socket's
		// requests without one (and reads no /perm/gokr-pw.txt).
		return "", nil
	}
	var err error
	for _, f := range files {
		var b []byte
		if b, err = os.ReadFile(f); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
	}
	return "", fmt.Errorf("netconf: gokrazy's password: %w", err)
}
