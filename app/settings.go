package app

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// ErrSettingsStale: the settings changed since the operator's form was
// loaded; nothing was written.
var ErrSettingsStale = errors.New("the settings were changed by someone else since this page was loaded")

// settingsID is the id of the settings aggregate's subject.
const settingsID = "project"

// settingsSnapshot is the settings a node runs with and the stream sequence
// of the event they came from.
type settingsSnapshot struct {
	settings domain.Settings
	version  uint64
	at       time.Time
}

// liveSettings holds the node's current settings; readers never lock.
type liveSettings struct {
	cur atomic.Pointer[settingsSnapshot]
	mu  sync.Mutex // serialises apply
	// changed is closed and replaced on every applied change (tests wait
	// on it).
	changed chan struct{}
}

func (l *liveSettings) apply(s domain.Settings, version uint64, at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.cur.Load(); old != nil && old.version >= version {
		return false
	}
	l.cur.Store(&settingsSnapshot{settings: s.Clone(), version: version, at: at})
	if l.changed != nil {
		close(l.changed)
	}
	l.changed = make(chan struct{})
	return true
}

// Settings returns the settings this node runs with. Callers must not modify
// the slices in the result (Clone it to edit).
func (s *core) Settings() domain.Settings {
	if snap := s.settings.cur.Load(); snap != nil {
		return snap.settings
	}
	return s.seedSettings
}

// SettingsVersion returns the settings with their version (the stream
// sequence of the settings.changed event they came from; 0 before the first).
func (s *core) SettingsVersion() (domain.Settings, uint64) {
	if snap := s.settings.cur.Load(); snap != nil {
		return snap.settings, snap.version
	}
	return s.seedSettings, 0
}

func (s *core) settingsSubject() string { return s.store.Subject("settings", settingsID) }

// LoadSettings rebuilds the settings aggregate from the log.
func (s *SettingsService) LoadSettings(ctx context.Context) (domain.ProjectSettings, uint64, error) {
	return loadAggregate(ctx, s.store, nil, s.settingsSubject(), each(domain.EvolveSettings))
}

// InitSettings makes the log hold the settings: the first node to start
// writes the configuration file's settings as the first version; after that
// the log wins, and a configuration file that differs only gets a warning.
// The node then runs with the log's settings.
func (s *SettingsService) InitSettings(ctx context.Context) error {
	_, err := retryDecision(ctx, retryOptions{jitter: true}, func(ctx context.Context) (struct{}, error) {
		p, v, err := s.LoadSettings(ctx)
		if err != nil {
			return struct{}{}, err
		}
		if p.Initialized {
			// Settings written before a limit existed: it comes from the
			// configuration once, written as a change so every node (and
			// the log's history) has it.
			next := p.Settings
			var added []string
			seeded := s.seedSettings.RateLimits.Later()
			for name, rl := range next.RateLimits.Later() {
				if *rl == (domain.RateLimitSetting{}) && *seeded[name] != (domain.RateLimitSetting{}) {
					*rl = *seeded[name]
					added = append(added, name)
				}
			}
			if len(added) > 0 {
				sort.Strings(added)
				evs, err := domain.DecideSettingsChange(p, next, "config-file", s.clock.Now())
				if err != nil {
					return struct{}{}, fmt.Errorf("settings: the %s limits from the configuration: %w", strings.Join(added, ", "), err)
				}
				if err := s.appendEvents(ctx, Meta{Actor: "config-file"}, pending{subject: s.settingsSubject(), expected: v, event: evs[0]}); err != nil {
					return struct{}{}, err
				}
				return struct{}{}, errDecideAgain
			}
		}
		if p.Initialized {
			if !reflect.DeepEqual(p.Settings, s.seedSettings) {
				s.log.Warn("the settings in the log differ from the configuration file; the log wins (change settings in the portal)",
					"differences", len(domain.DiffSettings(p.Settings, s.seedSettings, true)))
			}
			s.settings.apply(p.Settings, v, time.Time{})
			return struct{}{}, nil
		}
		evs, err := domain.DecideSettingsChange(p, s.seedSettings, "config-file", s.clock.Now())
		if err != nil {
			return struct{}{}, fmt.Errorf("settings from the configuration: %w", err)
		}
		// Written (or, a conflict, another node wrote them first): the next
		// attempt applies what the log has, at its version.
		if err := s.appendEvents(ctx, Meta{Actor: "config-file"}, pending{subject: s.settingsSubject(), expected: 0, event: evs[0]}); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, errDecideAgain
	})
	return err
}

// ChangeSettings runs the ChangeSettings command: next replaces the settings
// at version expected (what the operator's page showed). It returns the new
// version. A *domain.SettingsError lists invalid fields; ErrSettingsStale
// says someone changed the settings in between.
func (s *SettingsService) ChangeSettings(ctx context.Context, expected uint64, next domain.Settings, by string, meta Meta) (uint64, error) {
	p, v, err := s.LoadSettings(ctx)
	if err != nil {
		return 0, err
	}
	if v != expected {
		return 0, ErrSettingsStale
	}
	evs, err := domain.DecideSettingsChange(p, next, by, s.clock.Now())
	if err != nil {
		return 0, err
	}
	if meta.Actor == "" {
		meta.Actor = by
	}
	env, err := s.envelope(evs[0], meta, "")
	if err != nil {
		return 0, err
	}
	seqs, err := s.store.Append(ctx, eventstore.Message{Subject: s.settingsSubject(), ExpectedLastSubjectSequence: v, Envelope: env})
	if errors.Is(err, eventstore.ErrConflict) {
		return 0, ErrSettingsStale
	}
	if err != nil {
		return 0, err
	}
	s.settings.apply(next, seqs[0], env.OccurredAt)
	return seqs[0], nil
}

// SettingsChange is one settings.changed event as the audit page shows it.
type SettingsChange struct {
	Version uint64
	Event   domain.SettingsChanged
	Actor   string
}

// SettingsHistory returns every settings change, newest first.
func (s *SettingsService) SettingsHistory(ctx context.Context) ([]SettingsChange, error) {
	recs, _, err := s.store.Load(ctx, s.settingsSubject())
	if err != nil {
		return nil, err
	}
	out := make([]SettingsChange, 0, len(recs))
	for i := len(recs) - 1; i >= 0; i-- {
		ev, err := domain.DecodeEvent(recs[i].Type, recs[i].Data)
		if err != nil {
			return nil, err
		}
		if ch, ok := ev.(domain.SettingsChanged); ok {
			out = append(out, SettingsChange{Version: recs[i].Sequence, Event: ch, Actor: recs[i].Actor})
		}
	}
	return out, nil
}

// SettingsChanged returns a channel closed at the next applied change.
func (s *SettingsService) SettingsChanged() <-chan struct{} {
	s.settings.mu.Lock()
	defer s.settings.mu.Unlock()
	if s.settings.changed == nil {
		s.settings.changed = make(chan struct{})
	}
	return s.settings.changed
}

// WatchSettings applies every settings change in the log as it arrives, until
// ctx ends. It uses an ordered consumer from the subject's latest event, so a
// node that was away catches up with one message; the consumer recreates
// itself after connection trouble, and one that cannot be created is
// retried.
func (s *SettingsService) WatchSettings(ctx context.Context, es *eventstore.Store) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		err := s.watchSettings(ctx, es)
		if err == nil || ctx.Err() != nil {
			return
		}
		s.log.Warn("settings: not following changes; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (s *SettingsService) watchSettings(ctx context.Context, es *eventstore.Store) error {
	cons, err := es.JetStream().OrderedConsumer(ctx, es.StreamName(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.settingsSubject()},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("settings: watch: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		rec, err := eventstore.DecodeMsg(m)
		if err != nil {
			s.log.Error("settings: undecodable event", "err", err)
			return
		}
		ev, err := domain.DecodeEvent(rec.Type, rec.Data)
		if err != nil {
			s.log.Error("settings: undecodable event", "sequence", rec.Sequence, "err", err)
			return
		}
		if ch, ok := ev.(domain.SettingsChanged); ok && s.settings.apply(ch.Settings, rec.Sequence, rec.OccurredAt) {
			s.log.Info("settings changed", "version", rec.Sequence, "by", ch.ChangedBy, "changes", len(ch.Changes))
		}
	})
	if err != nil {
		return fmt.Errorf("settings: watch: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	return nil
}
