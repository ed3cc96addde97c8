package kv

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix, the end of the range a prefix covers in a store's ordered
// reads; "" (unbounded) when there is none, as for an empty prefix or one
// of only 0xff bytes.
func PrefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}
