// The status page's live part. Every 2 s it fetches the page again (the
// server renders <main id="live"> from the same template) and
// /history.json, swaps the new <main> in and draws the chart into it:
// two requests to this page's own origin, and none elsewhere (the
// Content-Security-Policy allows no other).
"use strict";
(function () {
	const every = 2000;
	const svgNS = "http://www.w3.org/2000/svg";
	let last = "";

	function el(name, attrs, text) {
		const e = document.createElementNS(svgNS, name);
		for (const k in attrs) e.setAttribute(k, attrs[k]);
		if (text !== undefined) e.textContent = text;
		return e;
	}

	// nice returns a round axis maximum at least v.
	function nice(v) {
		if (v <= 1) return 1;
		const p = Math.pow(10, Math.floor(Math.log10(v)));
		for (const m of [1, 2, 5]) if (m * p >= v) return m * p;
		return 10 * p;
	}

	function spanText(s) {
		return s >= 120 ? Math.round(s / 60) + " min" : Math.round(s) + " s";
	}

	// draw draws h's points and the rate now as two lines, in and out,
	// over the time they span (a minute at least, an hour at most).
	function draw(svg, h) {
		const pts = h.points.concat([h.now]);
		const w = svg.clientWidth || 600, ht = svg.clientHeight || 170, top = 6, bottom = 18;
		svg.setAttribute("viewBox", "0 0 " + w + " " + ht);
		const t1 = h.now.t, span = Math.min(3600, Math.max(60, t1 - pts[0].t)), t0 = t1 - span;
		const max = nice(Math.max(...pts.map(p => Math.max(p.in, p.out))));
		const x = t => ((t - t0) / span * w).toFixed(1);
		const y = v => (ht - bottom - v / max * (ht - bottom - top)).toFixed(1);
		const line = k => pts.filter(p => p.t >= t0).map((p, i) => (i ? "L" : "M") + x(p.t) + "," + y(p[k])).join("");
		svg.replaceChildren(
			el("line", {class: "grid", x1: 0, x2: w, y1: y(max), y2: y(max)}),
			el("line", {class: "grid", x1: 0, x2: w, y1: y(max / 2), y2: y(max / 2)}),
			el("line", {class: "axis", x1: 0, x2: w, y1: y(0), y2: y(0)}),
			el("path", {class: "in", d: line("in")}),
			el("path", {class: "out", d: line("out")}),
			el("text", {x: 2, y: +y(max) + 12}, max + "/s"),
			el("text", {x: 2, y: ht - 4}, "\u2212" + spanText(span)),
			el("text", {x: w - 2, y: ht - 4, "text-anchor": "end"}, "now"));
	}

	// label gives each table cell its column's heading as data-label: on a
	// narrow screen the CSS shows a table's rows as stacked cards, each
	// cell after its label.
	function label(root) {
		for (const table of root.querySelectorAll("table")) {
			const heads = [...table.querySelectorAll("th")].map(th => th.textContent);
			for (const tr of table.querySelectorAll("tr")) {
				[...tr.querySelectorAll("td")].forEach((td, i) => td.dataset.label = heads[i] || "");
			}
		}
	}

	async function get(path) {
		const r = await fetch(path, {cache: "no-store"});
		if (!r.ok) throw new Error(path + ": HTTP " + r.status);
		return r;
	}

	async function refresh() {
		const updated = document.getElementById("updated");
		try {
			const [page, hist] = await Promise.all([get("/"), get("/history.json")]);
			const html = await page.text(), h = await hist.json();
			const live = new DOMParser().parseFromString(html, "text/html").getElementById("live");
			if (live) {
				label(live);
				document.getElementById("live").replaceWith(live);
			}
			draw(document.getElementById("chart"), h);
			last = new Date().toLocaleTimeString();
			updated.textContent = "updated " + last;
			updated.className = "";
		} catch (e) {
			updated.textContent = (last ? "not updated since " + last : "not updated") + ": " + e.message;
			updated.className = "bad";
		}
		setTimeout(refresh, every);
	}
	label(document);
	refresh();
})();
