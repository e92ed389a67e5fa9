package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/idstream/idstream/projections"
)

// analyticsUsage is the usage of `idstream analytics`.
const analyticsUsage = "usage: idstream analytics funnel [-from YYYY-MM-DD] [-to YYYY-MM-DD] [-client ID] [-json]"

// analyticsCmd is `idstream analytics funnel`: the guest funnel of
// GET /admin/analytics/funnel, read from the same projection.
func analyticsCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "funnel" {
		return errors.New(analyticsUsage)
	}
	fs := flag.NewFlagSet("analytics funnel", flag.ContinueOnError)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	from := fs.String("from", today.Add(-29*24*time.Hour).Format(time.DateOnly), "first day (UTC)")
	to := fs.String("to", today.Add(24*time.Hour).Format(time.DateOnly), "day after the last (exclusive)")
	client := fs.String("client", "", "one client (default: all)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	f, err1 := time.Parse(time.DateOnly, *from)
	t, err2 := time.Parse(time.DateOnly, *to)
	if err1 != nil || err2 != nil || !f.Before(t) {
		return errors.New("-from and -to are dates (YYYY-MM-DD), -from before -to")
	}
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	rep, err := projections.Reads{Pool: n.Pool}.Funnel(ctx, f, t, *client)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(rep)
	}
	fmt.Printf("%-10s %-16s %8s %8s %9s %7s %8s %10s %8s\n", "DAY", "CLIENT", "WEB", "KEYPAIR", "PROMOTED", "MERGED", "EXPIRED", "ANONYMOUS", "DELETED")
	for _, d := range rep.Days {
		fmt.Printf("%-10s %-16s %8d %8d %9d %7d %8d %10d %8d\n", d.Day, d.ClientID, d.Created["web"], d.Created["key_pair"],
			d.Promoted["web"]+d.Promoted["key_pair"], d.Merged, d.Expired, d.StillAnonymous, d.Deleted)
	}
	tot := rep.Totals
	fmt.Printf("\nguests %d (web %d, key pair %d); conversion %.1f%%; orphan share %.1f%%",
		tot.Created["web"]+tot.Created["key_pair"], tot.Created["web"], tot.Created["key_pair"], tot.ConversionRate*100, tot.OrphanShare*100)
	if m, p := tot.TimeToPromotion.Median, tot.TimeToPromotion.P90; m != nil && p != nil {
		fmt.Printf("; time to promotion median %s, p90 %s", time.Duration(*m*float64(time.Second)).Round(time.Second),
			time.Duration(*p*float64(time.Second)).Round(time.Second))
	}
	fmt.Println()
	return nil
}
