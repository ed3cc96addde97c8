// Package static holds the embedded landing page of rendezvous, in an HTML
// version for browsers and a plain-text version for curl users.
//
// The pages are embedded so that the binary is the whole deployment: "go
// run ." is enough to self-host. They carry {{NAME}} placeholders rather
// than fixed numbers because the limits are configurable and the base URL
// depends on how the server is reached; Render fills them in.
package static

import (
	_ "embed"
	"html"
	"strconv"
	"strings"
)

//go:embed index.html
var indexHTML string

//go:embed usage.txt
var usageText string

// Vars holds the values shown on the landing page. The limits are passed
// in rather than imported so that the page always states what the running
// server enforces, and so that this package depends on nothing else.
type Vars struct {
	// Host is the base URL used in the examples, such as
	// "http://127.0.0.1:8080", without a trailing slash.
	Host string
	// MaxKey is the largest key, in bytes.
	MaxKey int
	// MaxValue is the largest value, in bytes, owner secret included.
	MaxValue int
	// MaxKeys is how many keys the store holds in all.
	MaxKeys int
	// MaxTTL is the default and longest lifetime of a value, already
	// formatted for people, such as "24h".
	MaxTTL string
	// Rate describes the rate limit in words, such as "10 tokens/s,
	// burst 60"; it is free text because its shape is the limiter's call.
	Rate string
	// CostRead is how many rate-limit tokens a read takes.
	CostRead int
	// CostWrite is how many rate-limit tokens a write takes.
	CostWrite int
}

// Render returns the HTML page and the plain-text usage with the
// placeholders filled in. Values are HTML-escaped in the HTML page, since
// Host comes from the request and must not be able to inject markup; the
// text page gets them raw, because curl users would otherwise see entities.
//
// Render does all its work up front and returns plain bytes, so callers
// can render once at start-up, or once per distinct Host, and serve the
// result without further cost.
func Render(v Vars) (htmlPage, textPage []byte) {
	pairs := []string{
		"{{HOST}}", v.Host,
		"{{MAX_KEY}}", strconv.Itoa(v.MaxKey),
		"{{MAX_VALUE}}", strconv.Itoa(v.MaxValue),
		"{{MAX_KEYS}}", strconv.Itoa(v.MaxKeys),
		"{{MAX_TTL}}", v.MaxTTL,
		"{{RATE}}", v.Rate,
		"{{COST_READ}}", strconv.Itoa(v.CostRead),
		"{{COST_WRITE}}", strconv.Itoa(v.CostWrite),
	}
	escaped := make([]string, len(pairs))
	for i, s := range pairs {
		if i%2 == 1 {
			s = html.EscapeString(s)
		}
		escaped[i] = s
	}
	htmlPage = []byte(strings.NewReplacer(escaped...).Replace(indexHTML))
	textPage = []byte(strings.NewReplacer(pairs...).Replace(usageText))
	return htmlPage, textPage
}

// WantsHTML reports whether a request with this Accept header value should
// get the HTML page rather than the plain-text one: exactly when Accept
// names text/html with a non-zero quality. Browsers always name it, while
// curl, Wget, HTTPie, scripts and libraries send */*, something else or
// nothing; so text is the default, which suits the people who type curl,
// and any of them gets HTML by asking for it (curl -H 'Accept: text/html').
func WantsHTML(accept string) bool {
	for mediaRange := range strings.SplitSeq(accept, ",") {
		mediaType, params, _ := strings.Cut(mediaRange, ";")
		if !strings.EqualFold(strings.TrimSpace(mediaType), "text/html") {
			continue
		}
		if acceptable(params) {
			return true
		}
	}
	return false
}

// acceptable reports whether a media range's parameters leave it wanted,
// so that an explicit "text/html;q=0" counts as a refusal. A malformed q
// is ignored rather than rejected: guessing HTML for a browser with an odd
// header is better than guessing text.
func acceptable(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		name, value, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err == nil && q <= 0 {
			return false
		}
	}
	return true
}
