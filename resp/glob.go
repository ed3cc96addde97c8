package resp

// globMatch reports whether s matches the glob pattern p as Redis
// matches KEYS, SCAN and PSUBSCRIBE patterns: * any run, ? any byte,
// [abc], [^a], [a-z] classes, and \ quoting the next byte. Its work is
// bounded by len(p)*len(s), whatever the pattern.
func globMatch(p, s []byte) bool {
	// Backtracking to the last star only: linear in len(p)*len(s).
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				starP, starS = pi, si
				pi++
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				if n, ok := matchClass(p[pi:], s[si]); n > 0 {
					if ok {
						pi += n
						si++
						continue
					}
				} else if s[si] == '[' { // an unclosed class is a literal [
					pi++
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) && p[pi+1] == s[si] {
					pi += 2
					si++
					continue
				}
			default:
				if p[pi] == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		pi = starP + 1
		starS++
		si = starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass matches c against the class that starts p ("[...]"),
// returning the class's length (0 when it is not closed) and the result.
func matchClass(p []byte, c byte) (int, bool) {
	i := 1
	neg := false
	if i < len(p) && p[i] == '^' {
		neg = true
		i++
	}
	matched := false
	first := true
	for i < len(p) && (p[i] != ']' || first) {
		first = false
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		hi := lo
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi = p[i+2]
			if hi == '\\' && i+3 < len(p) {
				i++
				hi = p[i+2]
			}
			i += 2
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if lo <= c && c <= hi {
			matched = true
		}
		i++
	}
	if i >= len(p) {
		return 0, false
	}
	return i + 1, matched != neg
}

// literalPrefix returns the part of pattern p before its first glob
// character, which every key it matches starts with, and whether p is
// that prefix followed by a single final *:
// then the ordered index serves it without filtering.
func literalPrefix(p []byte) (prefix []byte, exact bool) {
	var out []byte
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*':
			return out, i == len(p)-1
		case '?', '[':
			return out, false
		case '\\':
			if i+1 < len(p) {
				i++
			}
		}
		out = append(out, p[i])
	}
	return out, false
}
