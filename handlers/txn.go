package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// txnBody is the JSON body of POST /txn.
type txnBody struct {
	Checks []txnCheckJSON `json:"checks"`
	Ops    []txnOpJSON    `json:"ops"`
}

// txnCheckJSON is one check: {key, version}, {key, absent: true} or
// {key, value[, encoding]}. Pointers tell a field left out from a zero.
type txnCheckJSON struct {
	Key      string  `json:"key"`
	Version  *uint64 `json:"version"`
	Absent   *bool   `json:"absent"`
	Value    *string `json:"value"`
	Encoding *string `json:"encoding"`
}

// txnOpJSON is one operation: {op: "set", key, value[, ttl, encoding,
// secret]} or {op: "delete", key[, secret]}.
type txnOpJSON struct {
	Op       string  `json:"op"`
	Key      string  `json:"key"`
	Value    *string `json:"value"`
	TTL      *string `json:"ttl"`
	Encoding *string `json:"encoding"`
	Secret   *string `json:"secret"`
}

// txnAnswer is the answer of a committed transaction.
type txnAnswer struct {
	OK      bool   `json:"ok"`
	Version uint64 `json:"version"`
}

// txnEntryOverhead is what one check or op may take in the body besides
// its key and value: field names, an op name, a TTL, an encoding, and the
// indentation of a pretty-printed body.
const txnEntryOverhead = 256

// txnBodyLimit is the largest body of POST /txn: as many checks and ops
// as a transaction may have, each with a key and a value as large as
// allowed, every byte escaped the way JSON encoders may escape it (Go's
// writes < as \u003c, six bytes for one). A body past it is refused
// without reading the rest.
func txnBodyLimit(svc *policy.Service) int {
	cfg := svc.Config()
	entry := 6*(cfg.MaxKeySize+cfg.MaxValueSize) + txnEntryOverhead
	return 2*svc.BatchLimit()*entry + txnEntryOverhead
}

// handleTxn serves POST /txn: a transaction of checks and ops as JSON,
// committed whole or not at all (see policy.Service.Txn). It answers
// {"ok": true, "version": N}; a failed check answers 409 {"ok": false,
// "failed": [indexes]} to every client, JSON or not.
func (s *API) handleTxn(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	body, err := readBody(w, r, s.txnLimit, s.txnTooLarge)
	if err != nil {
		return err
	}
	req, err := parseTxn(body, r.Header.Get("X-Owner-Secret"))
	if err != nil {
		return err
	}
	res, err := s.svc.Txn(c, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, txnAnswer{OK: true, Version: res.Version})
	return nil
}

// parseTxn reads a /txn body. secret applies to every op without a
// "secret" of its own. Unknown fields are refused rather than ignored: a
// misspelt "ttl" or "absent" would otherwise commit something other than
// what its client meant.
func parseTxn(body []byte, secret string) (policy.TxnRequest, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return policy.TxnRequest{}, errTxnEmpty
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var tb txnBody
	if err := dec.Decode(&tb); err != nil {
		return policy.TxnRequest{}, txnSyntax(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return policy.TxnRequest{}, policy.Errorf(policy.KindBadRequest, "malformed transaction: more data after the JSON object")
	}
	req := policy.TxnRequest{Checks: make([]policy.TxnCheck, len(tb.Checks)), Ops: make([]policy.TxnOp, len(tb.Ops))}
	for i, cj := range tb.Checks {
		ck := policy.TxnCheck{Key: cj.Key}
		given := 0
		if cj.Version != nil {
			ck.Kind, ck.Version = policy.CheckVersion, *cj.Version
			given++
		}
		if cj.Absent != nil {
			if !*cj.Absent {
				return req, txnBad("checks", i, `"absent" can only be true`)
			}
			ck.Kind = policy.CheckAbsent
			given++
		}
		if cj.Value != nil {
			v, err := txnValue(*cj.Value, cj.Encoding)
			if err != nil {
				return req, txnBad("checks", i, err.Error())
			}
			ck.Kind, ck.Value = policy.CheckValue, v
			given++
		} else if cj.Encoding != nil {
			return req, txnBad("checks", i, `"encoding" applies to a "value"`)
		}
		if given != 1 {
			return req, txnBad("checks", i, `needs exactly one of "version", "absent" or "value"`)
		}
		req.Checks[i] = ck
	}
	for i, oj := range tb.Ops {
		op := policy.TxnOp{Key: oj.Key, Secret: secret}
		if oj.Secret != nil {
			op.Secret = *oj.Secret
		}
		switch oj.Op {
		case "set":
			if oj.Value == nil {
				return req, txnBad("ops", i, `set needs a "value"`)
			}
			v, err := txnValue(*oj.Value, oj.Encoding)
			if err != nil {
				return req, txnBad("ops", i, err.Error())
			}
			op.Op, op.Value = policy.TxnSet, v
			if oj.TTL != nil {
				if op.TTL, err = policy.ParseTTL(*oj.TTL); err != nil {
					return req, txnBad("ops", i, err.Error())
				}
			}
		case "delete":
			if oj.Value != nil || oj.TTL != nil || oj.Encoding != nil {
				return req, txnBad("ops", i, `delete takes no "value", "ttl" or "encoding"`)
			}
			op.Op = policy.TxnDelete
		case "":
			return req, txnBad("ops", i, `"op" is missing: want "set" or "delete"`)
		default:
			return req, txnBad("ops", i, fmt.Sprintf(`unknown op %q: want "set" or "delete"`, oj.Op))
		}
		req.Ops[i] = op
	}
	return req, nil
}

var errTxnEmpty = policy.Errorf(policy.KindBadRequest, `transaction body is empty: send {"checks": [...], "ops": [...]} as JSON`)

// txnValue decodes a value given as text, or as base64 with encoding
// "base64".
func txnValue(v string, encoding *string) ([]byte, error) {
	if encoding == nil {
		return []byte(v), nil
	}
	if *encoding != "base64" {
		return nil, fmt.Errorf(`unknown encoding %q: the only one is "base64"`, *encoding)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, errors.New(`"value" is not valid base64`)
	}
	return b, nil
}

// txnBad refuses element i of list ("checks" or "ops") with a reason.
func txnBad(list string, i int, reason string) error {
	return policy.Errorf(policy.KindBadRequest, "%s[%d]: %s", list, i, reason)
}

// txnSyntax words a JSON decoding error as one line.
func txnSyntax(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return policy.Errorf(policy.KindBadRequest, "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te) && te.Field != "":
		return policy.Errorf(policy.KindBadRequest, "malformed transaction: %s cannot be a JSON %s", te.Field, te.Value)
	case errors.As(err, &te):
		return policy.Errorf(policy.KindBadRequest, `malformed transaction: the body must be a JSON object {"checks": [...], "ops": [...]}, not a %s`, te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return policy.Errorf(policy.KindBadRequest, "malformed JSON: the body ends in the middle")
	}
	return policy.Errorf(policy.KindBadRequest, "malformed transaction: %s", strings.TrimPrefix(err.Error(), "json: "))
}
