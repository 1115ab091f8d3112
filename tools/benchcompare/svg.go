package benchcompare

import (
	"encoding/xml"
	"fmt"
	"math"
	"strings"

	"edgebroker/tools/loadgen"
)

// A chart panel: one figure per scenario and broker, drawn as a bar per
// broker, the longer of a scenario's bars the full width.
type panel struct {
	title string
	value func(r *loadgen.Result) (float64, bool)
	unit  func(r *loadgen.Result) string // the value's unit, for its label
	// higher: longer is better (a rate); the ratio label says so.
	higher bool
}

var panels = []panel{
	{"Throughput, unpaced (msg/s; handshakes: connects/s), longer is better", func(r *loadgen.Result) (float64, bool) {
		switch {
		case r.Mode == loadgen.Connects:
			return r.ConnsPerSecond, true
		case messages(r) && r.Rate == 0:
			return r.RecvRate, true
		}
		return 0, false
	}, func(r *loadgen.Result) string {
		if r.Mode == loadgen.Connects {
			return "connects/s"
		}
		return "msg/s"
	}, true},
	{"Broker CPU per message (handshakes: per connection), shorter is better", func(r *loadgen.Result) (float64, bool) {
		if r.Broker == nil || r.Mode == loadgen.Conns {
			return 0, false
		}
		return r.Broker.CPUPerMillion, true // CPU s per million = µs per one
	}, func(r *loadgen.Result) string {
		if r.Mode == loadgen.Connects {
			return "µs / connect"
		}
		return "µs / msg"
	}, false},
	{"Memory per idle subscribed connection, shorter is better", func(r *loadgen.Result) (float64, bool) {
		if r.Broker == nil || r.Mode != loadgen.Conns {
			return 0, false
		}
		return r.Broker.RSSPerConn / 1024, true
	}, func(*loadgen.Result) string { return "KiB / conn" }, false},
}

// The chart's geometry, in pixels.
const (
	svgWidth    = 1020
	svgLabelW   = 390 // scenario names, right-aligned before the bars
	svgBarW     = 370 // the longest bar of a scenario
	svgBarH     = 11
	svgRowGap   = 9  // between scenarios
	svgPanelGap = 34 // above a panel's title
)

// brokerColor is each broker's bar colour; others are grey.
var brokerColor = map[string]string{"edgebroker": "#2f6fb0", "mosquitto": "#d9822b"}

// SVG renders the report as a bar chart, one panel per figure
// (throughput, CPU per message, memory per idle connection) with a bar
// per scenario and broker, hand-written SVG 1.1.
func (r *Report) SVG() []byte {
	var body strings.Builder
	y := 56
	for _, p := range panels {
		rows := r.panelRows(p)
		if len(rows) == 0 {
			continue
		}
		y += svgPanelGap
		fmt.Fprintf(&body, "<text class=\"panel\" x=\"10\" y=\"%d\">%s</text>\n", y, esc(p.title))
		y += 12
		for _, row := range rows {
			y = r.drawRow(&body, p, row, y)
		}
	}
	var b strings.Builder
	height := y + 24
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">
<style>text{fill:#222}.panel{font-weight:bold;font-size:13px}.title{font-weight:bold;font-size:15px}.note{fill:#666;font-size:11px}</style>
<rect width="100%%" height="100%%" fill="#fff"/>
`, svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, "<text class=\"title\" x=\"10\" y=\"22\">%s</text>\n", esc(strings.Join(r.brokers, " vs ")))
	fmt.Fprintf(&b, "<text class=\"note\" x=\"10\" y=\"40\">%s</text>\n", esc(r.caption()))
	x := svgWidth - 10 - 110*len(r.brokers)
	for _, br := range r.brokers {
		fmt.Fprintf(&b, "<rect x=\"%d\" y=\"12\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"22\">%s</text>\n", x, color(br), x+16, esc(br))
		x += 110
	}
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// chartRow is one scenario of a panel: its figure per broker (NaN: none)
// and a result to name the unit by.
type chartRow struct {
	scenario string
	values   []float64 // by r.brokers
	sample   *loadgen.Result
}

// panelRows returns the scenarios with a figure in p for any broker.
func (r *Report) panelRows(p panel) []chartRow {
	var rows []chartRow
	for _, sc := range r.scenarios {
		row := chartRow{scenario: sc}
		found := false
		for _, br := range r.brokers {
			ss := r.samples[[2]string{sc, br}]
			v, ok := medianOf(ss, func(s sample) (float64, bool) { return p.value(s.res) })
			if !ok {
				v = math.NaN()
			}
			for _, s := range ss {
				if s.res != nil && row.sample == nil {
					row.sample = s.res
				}
			}
			found = found || ok
			row.values = append(row.values, v)
		}
		if found {
			rows = append(rows, row)
		}
	}
	return rows
}

// drawRow draws one scenario's bars from y and returns the next row's y.
func (r *Report) drawRow(b *strings.Builder, p panel, row chartRow, y int) int {
	top := 0.0
	for _, v := range row.values {
		if !math.IsNaN(v) {
			top = max(top, v)
		}
	}
	h := len(row.values)*svgBarH + (len(row.values)-1)*2
	fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", svgLabelW, y+h/2+4, esc(row.scenario))
	unit := p.unit(row.sample)
	for i, br := range r.brokers {
		v := row.values[i]
		by := y + i*(svgBarH+2)
		if math.IsNaN(v) {
			label, why := "not measured", "no successful run"
			if w, ok := r.notRun[[2]string{row.scenario, br}]; ok {
				label, why = "not run (see the table's notes)", w
			}
			fmt.Fprintf(b, "<text class=\"note\" x=\"%d\" y=\"%d\">%s: %s<title>%s</title></text>\n", svgLabelW+10, by+svgBarH-1, esc(br), esc(label), esc(why))
			continue
		}
		w := 0.0
		if top > 0 {
			w = v / top * svgBarW
		}
		fmt.Fprintf(b, "<rect class=\"bar\" data-scenario=\"%s\" data-broker=\"%s\" x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>%s, %s: %s %s</title></rect>\n",
			esc(row.scenario), esc(br), svgLabelW+10, by, max(w, 1), svgBarH, color(br), esc(row.scenario), esc(br), num(v), esc(unit))
		label := num(v) + " " + unit
		if i == 0 && len(row.values) > 1 && !math.IsNaN(row.values[1]) && row.values[1] > 0 {
			label += fmt.Sprintf(" (%.2f× %s)", v/row.values[1], r.brokers[1])
		}
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\">%s</text>\n", float64(svgLabelW+14)+max(w, 1), by+svgBarH-1, esc(label))
	}
	return y + h + svgRowGap
}

// caption is the chart's second line: when and how it was measured.
func (r *Report) caption() string {
	c := fmt.Sprintf("%d rounds, medians; MQTT %s; %s", r.cfg.Rounds, mqttName(r.cfg.Version), r.payloads())
	if r.cfg.Duration > 0 {
		c += fmt.Sprintf("; %v per run", r.cfg.Duration)
	}
	if !r.started.IsZero() {
		c = r.started.Format("2006-01-02") + "; " + c
	}
	return c + ". Each scenario's longer bar is full width."
}

func color(broker string) string {
	if c, ok := brokerColor[broker]; ok {
		return c
	}
	return "#888"
}

// num prints a figure with three significant digits, or as an integer.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// esc escapes text for XML character data and attribute values.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
