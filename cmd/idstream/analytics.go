package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/idstream/idstream/projections"
)

// analyticsCommand is `idstream analytics funnel`: the guest funnel of
// GET /admin/analytics/funnel, read from the same projection.
func analyticsCommand() *cobra.Command {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	var from, to, client string
	var asJSON bool
	c := &cobra.Command{
		Use:   "funnel",
		Short: "The guest funnel per day and client (as GET /admin/analytics/funnel)",
		Long: `Print the guest funnel from the funnel projection: guests created per day
(web and key pair), promoted, merged, expired, still anonymous and deleted,
with the conversion rate, the orphan share and the time from guest to
promotion (median, p90).`,
		Example: "  idstream analytics funnel\n  idstream analytics funnel --from 2026-11-01 --to 2026-12-01 --client idstream-dev --json",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			f, err1 := time.Parse(time.DateOnly, from)
			t, err2 := time.Parse(time.DateOnly, to)
			if err1 != nil || err2 != nil || !f.Before(t) {
				return usageError{fmt.Errorf("--from and --to are dates (YYYY-MM-DD), --from before --to")}
			}
			return printFunnel(c.Context(), c.OutOrStdout(), f, t, client, asJSON)
		},
	}
	c.Flags().StringVar(&from, "from", today.Add(-29*24*time.Hour).Format(time.DateOnly), "first day (UTC)")
	c.Flags().StringVar(&to, "to", today.Add(24*time.Hour).Format(time.DateOnly), "day after the last (exclusive)")
	c.Flags().StringVar(&client, "client", "", "one client (default: all)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printFunnel(ctx context.Context, w io.Writer, f, t time.Time, client string, asJSON bool) error {
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	rep, err := projections.Reads{Pool: n.Pool}.Funnel(ctx, f, t, client)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(w).Encode(rep)
	}
	fmt.Fprintf(w, "%-10s %-16s %8s %8s %9s %7s %8s %10s %8s\n", "DAY", "CLIENT", "WEB", "KEYPAIR", "PROMOTED", "MERGED", "EXPIRED", "ANONYMOUS", "DELETED")
	for _, d := range rep.Days {
		fmt.Fprintf(w, "%-10s %-16s %8d %8d %9d %7d %8d %10d %8d\n", d.Day, d.ClientID, d.Created["web"], d.Created["key_pair"],
			d.Promoted["web"]+d.Promoted["key_pair"], d.Merged, d.Expired, d.StillAnonymous, d.Deleted)
	}
	tot := rep.Totals
	fmt.Fprintf(w, "\nguests %d (web %d, key pair %d); conversion %.1f%%; orphan share %.1f%%",
		tot.Created["web"]+tot.Created["key_pair"], tot.Created["web"], tot.Created["key_pair"], tot.ConversionRate*100, tot.OrphanShare*100)
	if m, p := tot.TimeToPromotion.Median, tot.TimeToPromotion.P90; m != nil && p != nil {
		fmt.Fprintf(w, "; time to promotion median %s, p90 %s", time.Duration(*m*float64(time.Second)).Round(time.Second),
			time.Duration(*p*float64(time.Second)).Round(time.Second))
	}
	fmt.Fprintln(w)
	return nil
}
