package eventstore

import (
	"encoding/json"
	"fmt"
)

// DecodeRecord reads the record stored at seq on subject. Record.Data may
// share data's memory.
func DecodeRecord(subject string, seq uint64, data []byte) (Record, error) {
	return decodeRecord(subject, seq, data)
}

func decodeRecord(subject string, seq uint64, data []byte) (Record, error) {
	var e Envelope
	if !decodeEnvelopeFast(data, &e) {
		e = Envelope{}
		if err := json.Unmarshal(data, &e); err != nil {
			return Record{}, fmt.Errorf("eventstore: event at %d on %s is not an envelope: %w", seq, subject, err)
		}
	}
	return Record{Envelope: e, Subject: subject, Sequence: seq}, nil
}

// decodeEnvelopeFast decodes an envelope as this package writes it (the
// layout of json.Marshal: no spaces, known keys, plain ASCII strings, data an
// object) in a single scan instead of encoding/json's several, which dominate
// the cost of reading the log. It takes only valid JSON (the envelope's own
// tokens exactly as above, data checked by validValue), gives exactly what
// json.Unmarshal gives, and reports false, leaving the work (and the error)
// to json.Unmarshal, on anything else.
func decodeEnvelopeFast(b []byte, e *Envelope) bool {
	if len(b) < 2 || b[0] != '{' {
		return false
	}
	i := 1
	for {
		key, next, ok := plainString(b, i)
		if !ok || next >= len(b) || b[next] != ':' {
			return false
		}
		i = next + 1
		switch string(key) {
		case "id", "type", "correlation_id", "causation_id", "actor":
			raw, next, ok := plainString(b, i)
			if !ok {
				return false
			}
			v := string(raw)
			switch string(key) {
			case "id":
				e.ID = v
			case "type":
				e.Type = v
			case "correlation_id":
				e.CorrelationID = v
			case "causation_id":
				e.CausationID = v
			case "actor":
				e.Actor = v
			}
			i = next
		case "occurred_at":
			_, next, ok := plainString(b, i)
			if !ok || e.OccurredAt.UnmarshalJSON(b[i:next]) != nil {
				return false
			}
			i = next
		case "data":
			if i >= len(b) || b[i] != '{' {
				return false
			}
			end, ok := validValue(b, i, 0)
			if !ok {
				return false
			}
			e.Data = json.RawMessage(b[i:end:end])
			i = end
		default:
			return false
		}
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i == len(b)-1
		default:
			return false
		}
	}
}

// plainString reads the JSON string starting at b[i] if it has no escapes and
// only printable ASCII, returning its contents and the index after its
// closing quote.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// maxDepth bounds the nesting validValue follows; deeper data is left to
// encoding/json.
const maxDepth = 100

// validValue reports whether a JSON value without whitespace starts at b[i],
// as encoding/json's scanner would accept it, and the index after it. It
// reports false for anything it does not accept, valid JSON with whitespace
// included.
func validValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == '{':
		i++
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			var ok bool
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			if i, ok = validString(b, i); !ok || i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = validValue(b, i+1, depth+1); !ok || i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i++
			case '}':
				return i + 1, true
			default:
				return 0, false
			}
		}
	case c == '[':
		i++
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = validValue(b, i, depth+1); !ok || i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i++
			case ']':
				return i + 1, true
			default:
				return 0, false
			}
		}
	case c == '"':
		return validString(b, i)
	case c == '-' || c >= '0' && c <= '9':
		return validNumber(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	}
	return 0, false
}

// validString checks the string starting at b[i] (a quote): any byte from
// 0x20 up but quote and backslash, or an escape.
func validString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			i++
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return 0, false
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return 0, false
					}
				}
				i += 4
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

// validNumber checks -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
func validNumber(b []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i + 1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}
