package domain

import "encoding/json"

// DecodeEventStd is DecodeEvent with encoding/json alone.
func DecodeEventStd(eventType string, data []byte) (Event, error) {
	return decodeEvent(eventType, data, json.Unmarshal)
}
