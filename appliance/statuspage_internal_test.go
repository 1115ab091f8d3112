package appliance

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestStatusPageSummary: the summary cards and the certificates' days
// left. A certificate's days left are red under 14, in its row and on
// the card of the one expiring first; listeners not all serving are red;
// the dataflows' lag has a card when there are dataflows, the longest.
func TestStatusPageSummary(t *testing.T) {
	render := func(st Status) string {
		t.Helper()
		var b strings.Builder
		if err := statusPage.Execute(&b, pageData(st)); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	now := time.Now()
	page := render(Status{
		Ports: []PortStatus{{Listener: "a", Port: 1, Serving: true}, {Listener: "b", Port: 2}},
		Certificates: []CertStatus{
			{Secret: "later", Issuer: "ca x", NotAfter: now.Add(20*24*time.Hour + time.Hour)},
			{Secret: "soon", Issuer: "ca x", NotAfter: now.Add(13*24*time.Hour + time.Hour)},
		},
		Dataflows: []DataflowStatus{{OldestQueuedSeconds: 2}, {OldestQueuedSeconds: 12.5}},
		Messages:  RatePoint{In: 3.25, Out: 1520},
	})
	for _, want := range []string{
		`<td>later</td><td>ca x</td><td><span>20 days left</span>`,
		`<td>soon</td><td>ca x</td><td><span class="bad">13 days left</span>`,
		`<div class="card bad"><b>13</b>days left: soon</div>`,
		`<div class="card bad"><b>1/2</b>listeners serving</div>`,
		`<div class="card"><b>12.5 s</b>dataflow lag</div>`,
		`<b id="in">3.2</b>`,
		`<b id="out">1520</b>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("status page without %s:\n%s", want, page)
		}
	}
	if n := len(regexp.MustCompile(`class="bad">\d+ days left`).FindAllString(page, -1)); n != 1 {
		t.Errorf("%d certificates in red, want 1", n)
	}

	page = render(Status{Ports: []PortStatus{{Listener: "a", Port: 1, Serving: true}}})
	for _, unwanted := range []string{"dataflow lag", "days left", "card bad"} {
		if strings.Contains(page, unwanted) {
			t.Errorf("status page of one port serving, no certificate, no dataflow: has %q:\n%s", unwanted, page)
		}
	}
}
