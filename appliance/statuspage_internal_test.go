package appliance

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestStatusPageDaysLeft: a certificate's days left are red under 14,
// in its row and on the summary card of the one expiring first.
func TestStatusPageDaysLeft(t *testing.T) {
	now := time.Now()
	st := Status{Certificates: []CertStatus{
		{Secret: "later", Issuer: "ca x", NotAfter: now.Add(20*24*time.Hour + time.Hour)},
		{Secret: "soon", Issuer: "ca x", NotAfter: now.Add(13*24*time.Hour + time.Hour)},
	}}
	var b strings.Builder
	if err := statusPage.Execute(&b, pageData(st)); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		`<td>later</td><td>ca x</td><td><span>20 days left</span>`,
		`<td>soon</td><td>ca x</td><td><span class="bad">13 days left</span>`,
		`<div class="card bad"><b>13</b>days left: soon</div>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("status page without %s:\n%s", want, page)
		}
	}
	if n := len(regexp.MustCompile(`class="bad">\d+ days left`).FindAllString(page, -1)); n != 1 {
		t.Errorf("%d certificates in red, want 1", n)
	}
}
