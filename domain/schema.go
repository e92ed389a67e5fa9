package domain

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// schemaFiles holds one JSON Schema (draft 2020-12) per event type, current
// and retired, each describing the event's payload (the envelope's data) and
// named after the type: schemas/user.promoted.v2.json.
//
//go:embed schemas/*.json
var schemaFiles embed.FS

// SchemaID is the $id of an event type's schema.
func SchemaID(eventType string) string {
	return "https://raw.githubusercontent.com/idstream/idstream/main/domain/schemas/" + eventType + ".json"
}

// Schema returns the JSON Schema of an event type's payload.
func Schema(eventType string) ([]byte, error) {
	b, err := schemaFiles.ReadFile(path.Join("schemas", eventType+".json"))
	if err != nil {
		return nil, fmt.Errorf("%w: no schema for %q", ErrUnknownEventType, eventType)
	}
	return b, nil
}

// SchemaTypes lists, in name order, the event types that have a schema: those of
// EventTypes and RetiredEventTypes.
func SchemaTypes() []string {
	entries, _ := fs.ReadDir(schemaFiles, "schemas")
	types := make([]string, 0, len(entries))
	for _, e := range entries {
		types = append(types, strings.TrimSuffix(e.Name(), ".json"))
	}
	return types
}
