package handlers_test

import (
	"net/http"
	"testing"
)

func TestDelete(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/a", "1"), "OK")
	assertOK(t, e.post("/del/a", ""), "OK")
	assertError(t, e.get("/get/a"), http.StatusNotFound, "key not found")
	assertError(t, e.post("/del/a", ""), http.StatusNotFound, "key not found")

	// DELETE on /get/ is the same operation.
	assertOK(t, e.post("/set/b%2Fc", "1"), "OK")
	assertOK(t, e.do(req{method: http.MethodDelete, target: "/get/b%2Fc"}), "OK")
	assertError(t, e.get("/get/b/c"), http.StatusNotFound, "")

	// Owned keys need their secret.
	assertOK(t, e.post("/set/owned", "v", "X-Owner-Secret", "s3cret"), "OK")
	assertError(t, e.post("/del/owned", ""), http.StatusForbidden, "owner secret")
	assertError(t, e.post("/del/owned", "", "X-Owner-Secret", "wrong"), http.StatusForbidden, "")
	assertValue(t, e.get("/get/owned"), http.StatusOK, "v", e.expiresAt(maxTTL))
	assertOK(t, e.post("/del/owned", "", "X-Owner-Secret", "s3cret"), "OK")
	assertError(t, e.get("/get/owned"), http.StatusNotFound, "")

	// An expired key is not there to delete.
	assertOK(t, e.post("/set/brief?ttl=1s", "v"), "OK")
	e.clock.Advance(2e9)
	assertError(t, e.post("/del/brief", ""), http.StatusNotFound, "")

	// Bad keys are refused as for writes.
	assertError(t, e.post("/del/", ""), http.StatusBadRequest, "empty")
	assertError(t, e.post("/del/a%00b", ""), http.StatusBadRequest, "control")
}

// ip/ deletes are scoped like writes: a caller can only delete its own.
func TestDeleteIPScoped(t *testing.T) {
	e := newEnv(t)
	a := req{method: http.MethodPost, target: "/set/ip/ssh", remote: "198.51.100.7:1000"}
	assertOK(t, e.do(a), "198.51.100.7")
	other := req{method: http.MethodPost, target: "/del/ip/ssh", remote: "203.0.113.9:1000"}
	assertError(t, e.do(other), http.StatusNotFound, "")
	assertValue(t, e.get("/get/ip/198.51.100.7/ssh"), http.StatusOK, "", e.expiresAt(maxTTL))
	own := req{method: http.MethodPost, target: "/del/ip/ssh", remote: "198.51.100.7:2000"}
	assertOK(t, e.do(own), "OK")
	assertError(t, e.get("/get/ip/198.51.100.7/ssh"), http.StatusNotFound, "")
}
