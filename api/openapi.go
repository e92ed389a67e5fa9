package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"

	"github.com/idstream/idstream/api/hosted"
	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var openapiYAML []byte

// openapiJSON is the API reference as JSON, converted once at start-up.
var openapiJSON, openapiDoc = func() ([]byte, map[string]any) {
	var doc map[string]any
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		panic(fmt.Sprintf("api: openapi.yaml: %v", err))
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("api: openapi.yaml is not JSON-compatible: %v", err))
	}
	return raw, doc
}()

// OpenAPIPaths lists "METHOD path" for every operation in the document.
func OpenAPIPaths() []string {
	var out []string
	paths, _ := openapiDoc["paths"].(map[string]any)
	for p, item := range paths {
		ops, _ := item.(map[string]any)
		for m := range ops {
			if m != "parameters" {
				out = append(out, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openapiJSON)
}

type docOp struct {
	Method, Path, Summary string
	Params                []string
}

var docsTemplate = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>idstream API reference</title><link rel="stylesheet" href="/static/idstream.css"></head>
<body><main class="card" style="max-width:60rem">
<h1>idstream API reference</h1>
<p class="lead">{{.Description}} The machine-readable document is at <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
{{range .Ops}}<section><h2 style="font-size:1.05rem;margin:1.25rem 0 .25rem"><code>{{.Method}} {{.Path}}</code></h2>
<p style="margin:0">{{.Summary}}</p>{{if .Params}}<p class="hint">Parameters: {{range $i, $p := .Params}}{{if $i}}, {{end}}<code>{{$p}}</code>{{end}}</p>{{end}}</section>
{{end}}</main></body></html>`))

// docs renders the API reference from the same document, on the server.
func (s *Server) docs(w http.ResponseWriter, _ *http.Request) {
	info, _ := openapiDoc["info"].(map[string]any)
	desc, _ := info["description"].(string)
	var ops []docOp
	paths, _ := openapiDoc["paths"].(map[string]any)
	for _, key := range OpenAPIPaths() {
		method, path, _ := strings.Cut(key, " ")
		op, _ := paths[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
		d := docOp{Method: method, Path: path}
		d.Summary, _ = op["summary"].(string)
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			if pm, ok := p.(map[string]any); ok {
				name, _ := pm["name"].(string)
				d.Params = append(d.Params, name)
			}
		}
		if body, ok := op["requestBody"].(map[string]any); ok {
			for ct := range body["content"].(map[string]any) {
				d.Params = append(d.Params, "body: "+ct)
			}
		}
		ops = append(ops, d)
	}
	hosted.PageHeaders(w, "")
	_ = docsTemplate.Execute(w, map[string]any{"Description": desc, "Ops": ops})
}
