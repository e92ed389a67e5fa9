package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Reads from a replicated stream. Load uses batched direct gets, which any
// replica that is (nearly) current may answer: a replica a few milliseconds
// behind gives a stale state. Decisions on stale state are never written
// (appends carry the expected sequence), but a read can reject what the
// leader already knows, such as a refresh token issued a moment ago on
// another node. Callers that met such a miss read again with
// WithLeaderCheck: the load is then checked against the stream leader and
// completed from it.

type leaderCheckKey struct{}

// WithLeaderCheck makes Load on a replicated stream confirm the subject's
// last sequence with the stream leader (one more round trip) and fetch what
// the answering replica did not have yet.
func WithLeaderCheck(ctx context.Context) context.Context {
	return context.WithValue(ctx, leaderCheckKey{}, true)
}

// Replicated reports whether reads may come from a lagging replica.
func (s *Store) Replicated() bool { return s.opts.Stream.Replicas > 1 }

// MsgGetRequest selects a message for LeaderGet: by sequence, the last on a
// subject, or the first on a subject from a sequence.
type MsgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

// StreamMsg is a message as a stream's leader answers it.
type StreamMsg struct {
	Subject  string `json:"subject"`
	Sequence uint64 `json:"seq"`
	Header   []byte `json:"hdrs"`
	Data     []byte `json:"data"`
}

type msgGetResponse struct {
	Error *struct {
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error,omitempty"`
	Message *StreamMsg `json:"message,omitempty"`
}

// errNoMessage is JetStream's "no message found" (10037).
var errNoMessage = errors.New("no message found")

// LeaderGet asks a stream's leader for a message through the JetStream API
// (a direct get may be answered by a replica that lags). found is false when
// there is no such message; a leader that cannot be reached is
// ErrUnavailable. Key-value buckets are streams too (KV_<bucket>).
func LeaderGet(ctx context.Context, nc *nats.Conn, stream string, req MsgGetRequest) (msg StreamMsg, found bool, err error) {
	body, _ := json.Marshal(req)
	m, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, body)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return StreamMsg{}, false, fmt.Errorf("%w: leader get: %v", ErrUnavailable, err)
		}
		return StreamMsg{}, false, err
	}
	var resp msgGetResponse
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return StreamMsg{}, false, fmt.Errorf("eventstore: leader get answer: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrCode == 10037 {
			return StreamMsg{}, false, nil
		}
		return StreamMsg{}, false, fmt.Errorf("%w: leader get: %s", ErrUnavailable, resp.Error.Description)
	}
	if resp.Message == nil {
		return StreamMsg{}, false, nil
	}
	return *resp.Message, true, nil
}

// leaderGet reads one event of the log from the stream leader.
func (s *Store) leaderGet(ctx context.Context, req MsgGetRequest) (Record, error) {
	m, found, err := LeaderGet(ctx, s.nc, s.opts.Stream.Name, req)
	if err != nil {
		return Record{}, err
	}
	if !found {
		return Record{}, errNoMessage
	}
	return decodeRecord(m.Subject, m.Sequence, m.Data)
}

// completeFromLeader checks recs (a subject's events after sequence after,
// as a replica had them) against the leader and appends what is missing.
func (s *Store) completeFromLeader(ctx context.Context, subject string, after uint64, recs []Record) ([]Record, error) {
	last, err := s.leaderGet(ctx, MsgGetRequest{LastFor: subject})
	if errors.Is(err, errNoMessage) {
		return recs, nil
	}
	if err != nil {
		return nil, err
	}
	have := after
	if len(recs) > 0 {
		have = recs[len(recs)-1].Sequence
	}
	for have < last.Sequence {
		rec, err := s.leaderGet(ctx, MsgGetRequest{Seq: have + 1, NextFor: subject})
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
		have = rec.Sequence
	}
	leaderChecked.Inc()
	return recs, nil
}
