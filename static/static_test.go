package static

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sample is a realistic configuration; the host is on the long side so
// that the column check below means something.
var sample = Vars{
	Host:      "https://rendezvous.example.com",
	MaxKey:    256,
	MaxValue:  4096,
	MaxKeys:   100000,
	MaxTTL:    "24h",
	Rate:      "10 tokens/s, burst 60",
	CostRead:  1,
	CostWrite: 5,
}

func TestRenderFillsEveryPlaceholder(t *testing.T) {
	h, txt := Render(sample)
	for name, page := range map[string]string{"html": string(h), "text": string(txt)} {
		assert.NotContains(t, page, "{{", name)
		assert.NotContains(t, page, "}}", name)
		for _, want := range []string{
			sample.Host + "/get/mesh42/node-a", "/txn", "256", "4096", "100000",
			"24h", "10 tokens/s, burst 60",
		} {
			assert.Contains(t, page, want, name)
		}
	}
}

func TestRenderEscapesHTMLOnlyInHTML(t *testing.T) {
	v := sample
	v.Host = `http://x"><script>alert(1)</script>`
	v.Rate = "a & b"
	h, txt := Render(v)

	assert.NotContains(t, string(h), "<script>alert")
	assert.NotContains(t, string(h), `x">`)
	assert.Contains(t, string(h), "&lt;script&gt;alert(1)&lt;/script&gt;")
	assert.Contains(t, string(h), "a &amp; b")

	assert.Contains(t, string(txt), v.Host, "text page must carry values raw")
	assert.Contains(t, string(txt), "a & b")
}

func TestTextPageIsPlain(t *testing.T) {
	_, txt := Render(sample)
	tag := regexp.MustCompile(`(?i)</?(html|head|body|main|p|pre|code|span|a|div|table|tr|td|th|ul|li|br|h[1-6]|script|style|footer)\b`)
	assert.Empty(t, tag.FindAllString(string(txt), -1))
	entity := regexp.MustCompile(`&(lt|gt|amp|quot|#\d+);`)
	assert.Empty(t, entity.FindAllString(string(txt), -1))

	lines := strings.Split(strings.TrimSuffix(string(txt), "\n"), "\n")
	assert.LessOrEqual(t, len(lines), 40)
	for i, line := range lines {
		assert.LessOrEqual(t, utf8.RuneCountInString(line), 80, "line %d: %q", i+1, line)
	}
}

func TestHTMLPageIsSmallAndSelfContained(t *testing.T) {
	h, _ := Render(sample)
	assert.Less(t, len(indexHTML), 15*1024)
	assert.Less(t, len(h), 15*1024)
	// Nothing may be fetched from elsewhere: no external fonts, scripts or
	// stylesheets.
	for _, bad := range []string{"src=", "<link", "@import", "url("} {
		assert.NotContains(t, string(h), bad)
	}
}

// The Accept header decides, whoever sends it: a command-line client gets
// text by default and HTML when it asks for it.
func TestWantsHTML(t *testing.T) {
	tests := []struct {
		name, accept string
		want         bool
	}{
		{"firefox", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},
		{"mixed case", "Text/HTML; q=1", true},
		{"curl, wget, xh", "*/*", false},
		{"curl asking for html", "text/html", true},
		{"asking for html among others", "application/json;q=0.5, text/html", true},
		{"empty", "", false},
		{"httpie", "application/json, */*;q=0.5", false},
		{"html refused", "text/html;q=0, */*", false},
		{"html with bad q", "text/html;q=oops", true},
		{"json", "application/json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, WantsHTML(tt.accept))
		})
	}
}
