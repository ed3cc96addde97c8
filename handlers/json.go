package handlers

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// ItemJSON is how an item looks in JSON answers. Values are text when
// they are valid UTF-8, since that is what almost everyone stores;
// otherwise base64, marked by ValueEncoding so binary values survive.
type ItemJSON struct {
	Key           string `json:"key"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
	ExpiresAt     int64  `json:"expires_at"` // Unix seconds; 0 for never
	Version       uint64 `json:"version"`
	Owned         *bool  `json:"owned,omitempty"`
	// DenoEncoding says how a Deno KV client encoded the value, when it
	// is not plain bytes: "v8" for a JS value (V8's serialization, as
	// Deno's structured clone writes it), "le64" for a Deno.KvU64 (8
	// bytes, little-endian).
	DenoEncoding string `json:"deno_encoding,omitempty"`
}

// NewItemJSON converts it; withOwner adds the owned flag.
func NewItemJSON(it kv.Item, withOwner bool) ItemJSON {
	j := ItemJSON{Key: it.Key, Version: it.Version}
	if it.Expires != 0 {
		j.ExpiresAt = it.ExpiresAt().Unix()
	}
	if utf8.Valid(it.Value) {
		j.Value = string(it.Value)
	} else {
		j.Value = base64.StdEncoding.EncodeToString(it.Value)
		j.ValueEncoding = "base64"
	}
	if withOwner {
		owned := it.Owned()
		j.Owned = &owned
	}
	return j
}

// wantsJSON reports whether the client asked for JSON, by Accept or by
// ?format=json (handy from a browser address bar).
func wantsJSON(r *http.Request) bool {
	if r.URL.RawQuery != "" && r.URL.Query().Get("format") == "json" {
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// parseETag reads one strong entity tag made by etag.
func parseETag(s string) (uint64, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 3 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, false
	}
	v, err := strconv.ParseUint(s[1:len(s)-1], 10, 64)
	return v, err == nil && v != 0
}

// conditions reads If-Match and If-None-Match for a write. Only one strong
// ETag (If-Match) or "*" (If-None-Match) is understood; anything else is
// refused rather than silently ignored, since ignoring a precondition
// would turn a safe write into a blind one.
func conditions(r *http.Request, req *policy.WriteRequest) error {
	if im := r.Header.Get("If-Match"); im != "" {
		v, ok := parseETag(im)
		if !ok {
			return policy.Errorf(policy.KindBadRequest, `If-Match must be one ETag as given by GET, like "42"`)
		}
		req.IfMatch = v
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if strings.TrimSpace(inm) != "*" {
			return policy.Errorf(policy.KindBadRequest, `If-None-Match on a write must be "*" (create only)`)
		}
		req.IfNoneMatch = true
	}
	return nil
}
