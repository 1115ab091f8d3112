package appliance_test

import (
	"context"
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/broker/testenv"
)

// browserWait bounds a wait for the page in Chromium: generous, as the
// browser is slow on a loaded 2-core machine.
const browserWait = 30 * time.Second

var updateScreenshot = flag.Bool("update-screenshot", false, "TestStatusPageInBrowser: write the README's screenshot, appliance/testdata/statuspage.png")

// TestStatusPageInBrowser: the status page in headless Chromium at a
// phone's width (375 px): the chart draws, the messages in/out per second
// change without a reload after a client publishes, nothing overflows the
// screen's width, no script error or Content-Security-Policy violation,
// and every request the page makes goes to the device itself. The
// screenshot is a test artifact (go test -artifacts keeps it; see
// CONTRIBUTING).
func TestStatusPageInBrowser(t *testing.T) {
	chromium := testenv.NeedTool(t, "chromium")
	a, addrs, stop := launch(t, appliance.Config{DataDir: t.TempDir(), Loopback: "127.0.0.1:0", PortMap: map[int]int{18883: 0}, StatusAddr: "127.0.0.1:0"})
	defer stop()
	base := "http://" + a.StatusAddr().String()

	var chromiumLog testenv.SyncBuffer
	defer func() {
		if t.Failed() {
			t.Logf("chromium's output:\n%s", chromiumLog.String())
		}
	}()
	for _, path := range []string{"/", "/status.js", "/history.json"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.Header.Get("Content-Security-Policy"), "default-src 'self'; frame-ancestors 'none'"; resp.StatusCode != 200 || got != want {
			t.Errorf("GET %s: %s, Content-Security-Policy %q, want 200 and %q", path, resp.Status, got, want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // tests run as root in CI; the page is our own, on loopback
		chromedp.Flag("disable-gpu", true),
		chromedp.CombinedOutput(&chromiumLog),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	var mu sync.Mutex
	var requests, problems []string
	err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := "exception: " + d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			problems = append(problems, msg)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				problems = append(problems, string(ev.Entry.Source)+": "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulateTouch), chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("load %s: %v", base, err)
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
	inPath := `document.querySelector("#chart path.in")?.getAttribute("d") ?? ""`
	testenv.Eventually(t, browserWait, "the chart's line of messages in", func() bool {
		return strings.Count(eval(inPath), "L") >= 1 // two points at least
	})
	in0, out0 := eval(`document.getElementById("in").textContent`), eval(`document.getElementById("out").textContent`)

	mqttURL := "tcp://" + addrs[1].String()
	sub := pahoClient(t, mqtt.NewClientOptions().AddBroker(mqttURL).SetClientID("page-sub"))
	defer sub.Disconnect(0)
	done(t, "subscribe", sub.Subscribe("page/#", 0, func(mqtt.Client, mqtt.Message) {}))
	pub := pahoClient(t, mqtt.NewClientOptions().AddBroker(mqttURL).SetClientID("page-pub"))
	defer pub.Disconnect(0)
	var in, out string
	n := 0
	testenv.Eventually(t, browserWait, "the page's messages in/out per second to change", func() bool {
		for range 20 { // the rate stays above 0 while the page takes its time
			done(t, "publish", pub.Publish("page/"+string(rune('a'+n%26)), 0, false, "x"))
			n++
		}
		in, out = eval(`document.getElementById("in").textContent`), eval(`document.getElementById("out").textContent`)
		return in != in0 && out != out0
	})
	t.Logf("%d messages published; messages in/s %s → %s, out/s %s → %s; chart: %s", n, in0, in, out0, out, eval(inPath))
	// The same refresh redrew the chart: its line's newest point is above
	// the axis.
	risen := `(() => {
		const [x, y] = document.querySelector("#chart path.in").getAttribute("d").split(/[ML]/).pop().split(",");
		return String(+y < +document.querySelector("#chart line.axis").getAttribute("y1"));
	})()`
	if eval(risen) != "true" {
		t.Errorf("the chart's line of messages in did not rise: %s", eval(inPath))
	}
	if clients := eval(`document.getElementById("clients").textContent`); clients != "2" {
		t.Errorf("clients on the page: %q, want 2", clients)
	}
	if w := eval(`document.documentElement.scrollWidth + "/" + window.innerWidth`); w != "375/375" {
		t.Errorf("page width/window width at 375 px: %s: the page overflows a phone's screen", w)
	}

	// The whole page, and the phone's first screen (the README's).
	full, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	first, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	for name, png := range map[string][]byte{"statuspage-full.png": full, "statuspage.png": first} {
		shot := filepath.Join(t.ArtifactDir(), name)
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", shot, len(png))
	}
	if *updateScreenshot {
		if err := os.WriteFile(filepath.Join("testdata", "statuspage.png"), first, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	var paths []string
	for _, r := range requests {
		u, err := url.Parse(r)
		if err != nil || u.Scheme+"://"+u.Host != base {
			t.Errorf("request to %s: not the page's own origin %s", r, base)
			continue
		}
		if !slices.Contains(paths, u.Path) {
			paths = append(paths, u.Path)
		}
	}
	slices.Sort(paths)
	if got, want := strings.Join(paths, " "), "/ /favicon.svg /history.json /status.css /status.js"; got != want {
		t.Errorf("paths requested: %s, want %s", got, want)
	}
	for _, p := range problems {
		t.Errorf("browser: %s", p)
	}
}
