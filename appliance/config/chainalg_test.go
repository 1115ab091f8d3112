package config

import (
	"strings"
	"testing"
)

// automaticPort is a listener whose Automatic port has key alg, issued
// by Issuer ca-issuer, whose CA is in Secret root-ca.
func automaticPort(alg string) string {
	return hdrL + `metadata: {name: lan}
spec:
  serviceType: LoadBalancer
  ports:
  - port: 8883
    tls:
      mode: Automatic
      certManagerCertificateSpec:
        issuerRef: {name: ca-issuer, kind: Issuer}
        privateKey: {algorithm: ` + alg + `}
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: ca-issuer}
spec:
  ca: {secretName: root-ca}
`
}

// rootCertificate is the Certificate that writes the CA into root-ca.
func rootCertificate(privateKey string) string {
	return `
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: self}
spec: {selfSigned: {}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: root}
spec:
  isCA: true
  commonName: root
  secretName: root-ca
  issuerRef: {name: self, kind: Issuer}
` + privateKey
}

// TestAutomaticMixedChain: an Automatic port whose key is of another
// family than its CA's (Rsa2048 under an EC CA, Ec256 under an RSA one)
// is refused at validation with the message of a mixed Manual chain; a
// key of the CA's family is accepted.
func TestAutomaticMixedChain(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"RSA leaf under EC Certificate", automaticPort("Rsa2048") + rootCertificate("  privateKey: {algorithm: ECDSA, size: 256}\n"),
			"t.yaml:12: BrokerListener/lan: spec.ports[0].tls.certManagerCertificateSpec.privateKey.algorithm: " + MixedChain +
				": Rsa2048 is an RSA key, and Issuer/ca-issuer signs with an EC key (Certificate/root); choose an EC algorithm"},
		{"EC leaf under RSA Certificate (cert-manager's default)", automaticPort("Ec256") + rootCertificate(""),
			": Ec256 is an EC key, and Issuer/ca-issuer signs with an RSA key (Certificate/root); choose an RSA algorithm"},
		{"RSA leaf under EC Secret", automaticPort("Rsa4096") + strings.Replace(tlsSecret(t), "name: tls", "name: root-ca", 1),
			": Rsa4096 is an RSA key, and Issuer/ca-issuer signs with an EC key (Secret/root-ca); choose an EC algorithm"},
		{"EC leaf under EC Certificate", automaticPort("Ec384") + rootCertificate("  privateKey: {algorithm: ECDSA, size: 256}\n"), ""},
		{"RSA leaf under RSA Certificate", automaticPort("Rsa2048") + rootCertificate(""), ""},
		{"CA Secret pending", automaticPort("Rsa2048"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Parse("t.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var s Set
			s.Add(rs...)
			err = s.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate:\n%v\nwant substring\n%s", err, tc.want)
			}
		})
	}
}
