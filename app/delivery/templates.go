package delivery

import (
	"bytes"
	htmltemplate "html/template"
	"strings"
	"text/template"
	"time"

	"golang.org/x/text/language"
)

// Texts are the words of every message kind in one language. Fields are
// text/template strings over the message's data ({{.AppName}},
// {{.Code}}, {{.Minutes}}).
type Texts struct {
	// Subject and Lead (the sentence before the code) per kind.
	Subject map[Kind]string
	Lead    map[Kind]string
	// Expiry says how long the code works; Ignore what to do if the person
	// did not ask; SMS is the whole text message.
	Expiry string
	Ignore string
	SMS    map[Kind]string
}

// English is the catalogue's fallback language.
var English = Texts{
	Subject: map[Kind]string{
		KindVerify:        "Your {{.AppName}} verification code",
		KindPromote:       "Confirm your email for {{.AppName}}",
		KindRegister:      "Confirm your email for {{.AppName}}",
		KindSignIn:        "Your {{.AppName}} sign-in code",
		KindResetPassword: "Reset your {{.AppName}} password",
		KindTest:          "A test message from {{.AppName}}",
	},
	Lead: map[Kind]string{
		KindVerify:        "Enter this code to confirm this address for your {{.AppName}} account:",
		KindPromote:       "Enter this code to finish creating your {{.AppName}} account:",
		KindRegister:      "Enter this code to create your {{.AppName}} account:",
		KindSignIn:        "Enter this code to sign in to {{.AppName}}:",
		KindResetPassword: "Enter this code to choose a new password for your {{.AppName}} account:",
		KindTest:          "The delivery settings of {{.AppName}} work. Test code:",
	},
	Expiry: "The code works for {{.Minutes}} minutes, once.",
	Ignore: "If you did not ask for it, ignore this message: nothing changes without the code. Never tell anyone this code.",
	SMS: map[Kind]string{
		KindVerify:        "{{.Code}} is your {{.AppName}} verification code. It works for {{.Minutes}} minutes. Never share it.",
		KindPromote:       "{{.Code}} is your {{.AppName}} code to finish creating your account. It works for {{.Minutes}} minutes.",
		KindRegister:      "{{.Code}} is your {{.AppName}} code to create your account. It works for {{.Minutes}} minutes. Never share it.",
		KindSignIn:        "{{.Code}} is your {{.AppName}} sign-in code. It works for {{.Minutes}} minutes. Never share it.",
		KindResetPassword: "{{.Code}} is your {{.AppName}} password reset code. It works for {{.Minutes}} minutes. Never share it.",
		KindTest:          "{{.Code}}: a test message from {{.AppName}}.",
	},
}

// Catalogue holds the texts by language; Lookup picks the best for a
// locale.
type Catalogue struct {
	tags    []language.Tag
	texts   []Texts
	matcher language.Matcher
}

// NewCatalogue makes a catalogue; English is always in it (and first, the
// fallback).
func NewCatalogue(more map[language.Tag]Texts) *Catalogue {
	c := &Catalogue{tags: []language.Tag{language.English}, texts: []Texts{English}}
	for tag, t := range more {
		if tag == language.English {
			continue
		}
		c.tags = append(c.tags, tag)
		c.texts = append(c.texts, t)
	}
	c.matcher = language.NewMatcher(c.tags)
	return c
}

// DefaultCatalogue has the shipped languages (English).
var DefaultCatalogue = NewCatalogue(nil)

// Lookup returns the texts for a locale (BCP 47, or an Accept-Language
// list); English when nothing matches.
func (c *Catalogue) Lookup(locale string) Texts {
	if locale == "" {
		return c.texts[0]
	}
	tags, _, err := language.ParseAcceptLanguage(locale)
	if err != nil || len(tags) == 0 {
		return c.texts[0]
	}
	_, i, conf := c.matcher.Match(tags...)
	if conf == language.No {
		return c.texts[0]
	}
	return c.texts[i]
}

// Rendered is a message in words.
type Rendered struct {
	Subject, Text, HTML, SMS string
}

type renderData struct {
	AppName, Code, Lead, Expiry, Ignore string
	Minutes                             int
}

var htmlBody = htmltemplate.Must(htmltemplate.New("html").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.AppName}}</title></head>
<body style="font-family:sans-serif;line-height:1.5">
<p>{{.Lead}}</p>
<p style="font-size:2em;letter-spacing:0.2em;font-weight:bold">{{.Code}}</p>
<p>{{.Expiry}}</p>
<p style="color:#555">{{.Ignore}}</p>
</body></html>
`))

// Render puts a message into the words of its locale.
func (c *Catalogue) Render(m Message) (Rendered, error) {
	t := c.Lookup(m.Locale)
	mins := int((m.Lifetime + time.Minute - 1) / time.Minute)
	d := renderData{AppName: m.AppName, Code: m.Code, Minutes: mins}
	exec := func(src string) (string, error) {
		tpl, err := template.New("").Parse(src)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		err = tpl.Execute(&b, d)
		return b.String(), err
	}
	var r Rendered
	var err error
	steps := []struct {
		dst *string
		src string
	}{{&r.Subject, t.Subject[m.Kind]}, {&d.Lead, t.Lead[m.Kind]}, {&d.Expiry, t.Expiry}, {&d.Ignore, t.Ignore}, {&r.SMS, t.SMS[m.Kind]}}
	for _, s := range steps {
		if *s.dst, err = exec(s.src); err != nil {
			return Rendered{}, err
		}
	}
	r.Text = d.Lead + "\n\n    " + d.Code + "\n\n" + d.Expiry + "\n\n" + d.Ignore + "\n"
	var h bytes.Buffer
	if err := htmlBody.Execute(&h, d); err != nil {
		return Rendered{}, err
	}
	r.HTML = h.String()
	return r, nil
}
