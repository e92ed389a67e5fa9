package portal

import (
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/idstream/idstream/projections"
)

// The portal's guest funnel page (issue 21): per day, what became of the
// guests created that day, as a chart drawn on the server (inline SVG, no
// script; patterns and labels, not colour alone) with the same numbers in a
// table, and the totals.

type funnelRow struct {
	Day                                          string
	Web, KeyPair, Created                        int64
	Promoted, Merged, Expired, Anonymous, Delete int64
}

type funnelData struct {
	From, To, ClientID string
	Rows               []funnelRow
	Totals             projections.FunnelTotals
	Created, Promoted  int64
	Chart              template.HTML
	Problems           []string
}

// funnelOutcomes are the chart's segments in drawing order: name, pattern
// id and the row's count.
var funnelOutcomes = []struct {
	Name, Pattern string
	Count         func(funnelRow) int64
}{
	{"promoted", "p-promoted", func(r funnelRow) int64 { return r.Promoted }},
	{"merged", "p-merged", func(r funnelRow) int64 { return r.Merged }},
	{"expired", "p-expired", func(r funnelRow) int64 { return r.Expired }},
	{"still anonymous", "p-anonymous", func(r funnelRow) int64 { return r.Anonymous }},
	{"deleted", "p-deleted", func(r funnelRow) int64 { return r.Delete }},
}

func (s *Server) portalFunnel(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	today := s.Service.Now().UTC().Truncate(24 * time.Hour)
	d := funnelData{ClientID: strings.TrimSpace(q.Get("client_id"))}
	errs := map[string]string{}
	day := func(name string, def time.Time) time.Time {
		v := strings.TrimSpace(q.Get(name))
		if v == "" {
			return def
		}
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			errs[name] = "Enter a date as YYYY-MM-DD."
			return def
		}
		return t
	}
	// The form's "to" is inclusive (the last day shown); the query's is not.
	last := day("to", today)
	from := day("from", last.Add(-29*24*time.Hour))
	to := last.Add(24 * time.Hour)
	if len(errs) == 0 && (!from.Before(to) || to.Sub(from) > 366*24*time.Hour) {
		errs["from"] = "The first day must not be after the last, and the range at most 366 days."
	}
	d.From, d.To = from.Format(time.DateOnly), last.Format(time.DateOnly)
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusBadRequest
		d.From, d.To = q.Get("from"), q.Get("to")
		s.renderPortal(w, r, status, "funnel", portalPage{Title: "Guest funnel", Section: "funnel", Error: "The date range is not valid.", Errors: errs, Data: &d})
		return
	}
	rep, err := s.Reads.Funnel(r.Context(), from, to, d.ClientID)
	if err != nil {
		s.Log.Error("portal: funnel", "error", err)
		d.Problems = append(d.Problems, "The funnel is not available right now.")
		status = http.StatusServiceUnavailable
	}
	// One row per day (the report has one per day and client).
	for _, fd := range rep.Days {
		if len(d.Rows) == 0 || d.Rows[len(d.Rows)-1].Day != fd.Day {
			d.Rows = append(d.Rows, funnelRow{Day: fd.Day})
		}
		row := &d.Rows[len(d.Rows)-1]
		row.Web += fd.Created["web"]
		row.KeyPair += fd.Created["key_pair"]
		row.Created = row.Web + row.KeyPair
		row.Promoted += fd.Promoted["web"] + fd.Promoted["key_pair"]
		row.Merged += fd.Merged
		row.Expired += fd.Expired
		row.Anonymous += fd.StillAnonymous
		row.Delete += fd.Deleted
	}
	d.Totals = rep.Totals
	d.Created = rep.Totals.Created["web"] + rep.Totals.Created["key_pair"]
	d.Promoted = rep.Totals.Promoted["web"] + rep.Totals.Promoted["key_pair"]
	d.Chart = funnelChart(d.Rows, d.From, d.To)
	s.renderPortal(w, r, status, "funnel", portalPage{Title: "Guest funnel", Section: "funnel", Data: &d})
}

// funnelChart draws one horizontal bar per day: its length the guests
// created that day, its segments what became of them, each segment filled
// with its own pattern and labelled with its count, the total at the end.
func funnelChart(rows []funnelRow, from, to string) template.HTML {
	const (
		labelW, barW, countW = 96, 460, 150
		barH, gap, top       = 22, 8, 34
		width                = labelW + barW + countW
	)
	esc := template.HTMLEscapeString
	var most int64
	for _, r := range rows {
		most = max(most, r.Created)
	}
	height := top + len(rows)*(barH+gap) + 10
	if len(rows) == 0 {
		height = top + 40
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" aria-labelledby="funnel-title funnel-desc" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">`, width, height, width, height)
	fmt.Fprintf(&b, `<title id="funnel-title">Guest funnel, %s to %s</title>`, esc(from), esc(to))
	var desc strings.Builder
	if len(rows) == 0 {
		desc.WriteString("No guest was created in this range.")
	}
	for i, r := range rows {
		if i > 0 {
			desc.WriteString(" ")
		}
		fmt.Fprintf(&desc, "%s: %d created (%d web, %d key pair), %d promoted, %d merged, %d expired, %d still anonymous, %d deleted.",
			r.Day, r.Created, r.Web, r.KeyPair, r.Promoted, r.Merged, r.Expired, r.Anonymous, r.Delete)
	}
	fmt.Fprintf(&b, `<desc id="funnel-desc">Bars per day of guests created, divided by what became of them. %s</desc>`, esc(desc.String()))
	// Patterns: solid, diagonal hatching, dots, empty, cross-hatching.
	b.WriteString(`<defs>` +
		`<pattern id="p-promoted" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#1d4f91"/></pattern>` +
		`<pattern id="p-merged" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/><rect width="3" height="6" fill="#2f6f3e"/></pattern>` +
		`<pattern id="p-expired" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#ffffff"/><circle cx="3" cy="3" r="1.6" fill="#8a4b00"/></pattern>` +
		`<pattern id="p-anonymous" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#ececec"/></pattern>` +
		`<pattern id="p-deleted" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#ffffff"/><path d="M0 0L6 6M6 0L0 6" stroke="#6b1d1d" stroke-width="1"/></pattern>` +
		`</defs>`)
	// The legend: a swatch of each pattern with its name.
	x := 0
	for _, o := range funnelOutcomes {
		fmt.Fprintf(&b, `<rect x="%d" y="4" width="14" height="14" fill="url(#%s)" stroke="#333"/><text x="%d" y="15" fill="#1a1a1a">%s</text>`,
			x, o.Pattern, x+18, esc(o.Name))
		x += 22 + 7*len(o.Name) + 12
	}
	if len(rows) == 0 {
		fmt.Fprintf(&b, `<text x="0" y="%d" fill="#1a1a1a">No guest was created in this range.</text>`, top+20)
	}
	for i, r := range rows {
		y := top + i*(barH+gap)
		fmt.Fprintf(&b, `<g><text x="0" y="%d" fill="#1a1a1a">%s</text>`, y+barH/2+4, esc(r.Day))
		x := float64(labelW)
		for _, o := range funnelOutcomes {
			n := o.Count(r)
			if n == 0 {
				continue
			}
			w := float64(barW) * float64(n) / float64(most)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="url(#%s)" stroke="#333"><title>%s: %d %s</title></rect>`,
				x, y, w, barH, o.Pattern, esc(r.Day), n, esc(o.Name))
			if label := fmt.Sprint(n); w >= float64(8*len(label)+6) {
				// A halo keeps the number readable on every pattern.
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#1a1a1a" stroke="#ffffff" stroke-width="3" paint-order="stroke" font-weight="bold">%s</text>`,
					x+w/2, y+barH/2+4, label)
			}
			x += w
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#1a1a1a">%d created</text></g>`, x+6, y+barH/2+4, r.Created)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// formatSecondsF writes a time to promotion: 45s, 12m 5s, 3h 20m, 2d 4h.
func formatSecondsF(p *float64) string {
	if p == nil {
		return "—"
	}
	s := int64(math.Round(*p))
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm %ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh %dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd %dh", s/86400, s%86400/3600)
}
