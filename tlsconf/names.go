package tlsconf

import "crypto/tls"

// ClientNames returns the names of the client certificate that the
// handshake cs verified: its subject common name, then its DNS names, then
// its URI names, in the certificate's order. A connection without a
// verified certificate (no client CA, none sent under ClientAuthOptional,
// or cs nil) has none. Only a verified chain counts: a certificate that
// was merely presented names nobody.
func ClientNames(cs *tls.ConnectionState) []string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	leaf := cs.VerifiedChains[0][0]
	names := make([]string, 0, 1+len(leaf.DNSNames)+len(leaf.URIs))
	if leaf.Subject.CommonName != "" {
		names = append(names, leaf.Subject.CommonName)
	}
	names = append(names, leaf.DNSNames...)
	for _, u := range leaf.URIs {
		names = append(names, u.String())
	}
	return names
}
